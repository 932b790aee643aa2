// reel serve through the official OpenAI Node SDK (openai 6.30.1): create a video, poll it to
// completion, download it and check it is H.264, list, delete, and a refused field.
// Usage: REEL_SERVER_URL=http://127.0.0.1:PORT node sdk_test.mjs   (run.sh starts the server)
// Exit code 0 when every check passes; 1 with a message naming the first that failed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI, { BadRequestError, NotFoundError } from 'openai';

// The README's quick-start prompt: words shapes-m knows.
const PROMPT = 'a large red circle moving right on a striped navy background';
const POLL_TIMEOUT_MS = 600_000;

const server = process.env.REEL_SERVER_URL;
if (!server) {
  console.error('sdk_test: set REEL_SERVER_URL (e.g. http://127.0.0.1:8000)');
  process.exit(2);
}

const client = new OpenAI({
  apiKey: 'unused-locally',
  baseURL: server.replace(/\/+$/, '') + '/v1',
  maxRetries: 0, // what the server answers, as it answers it
  timeout: 120_000,
});

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

// `fn` must throw an instance of `type` with `status`; returns the error.
async function expectError(what, type, status, fn) {
  try {
    await fn();
  } catch (err) {
    check(err instanceof type, `${what}: expected ${type.name}, got ${err?.constructor?.name}: ${err?.message}`);
    check(err.status === status, `${what}: expected status ${status}, got ${err.status}`);
    return err;
  }
  throw new CheckFailed(`${what}: expected ${type.name} (${status}), but the call succeeded`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const started = Date.now();
  const created = await client.videos.create({ model: 'shapes-m', prompt: PROMPT, seconds: '2', size: '256x256' });
  check(typeof created.id === 'string' && created.id.length > 0, `create: no id in ${JSON.stringify(created)}`);
  check(created.object === 'video', `create: object is ${created.object}, not video`);
  check(['queued', 'in_progress', 'completed'].includes(created.status), `create: status ${created.status}`);
  check(created.model === 'shapes-m', `create: model ${created.model}`);
  check(created.size === '256x256', `create: size ${created.size}`);
  check(created.seconds === '2', `create: seconds ${JSON.stringify(created.seconds)}`);
  console.log(`sdk_test: created ${created.id} (${created.status})`);

  let video = created;
  while (video.status !== 'completed') {
    check(video.status !== 'failed' && video.status !== 'cancelled',
      `retrieve: ${video.id} ${video.status}: ${JSON.stringify(video.error)}`);
    check(Date.now() - started < POLL_TIMEOUT_MS, `retrieve: ${video.id} not completed after ${POLL_TIMEOUT_MS / 1000} s (${video.status}, ${video.progress}%)`);
    await sleep(500);
    video = await client.videos.retrieve(created.id);
    check(video.id === created.id, `retrieve: id ${video.id}, expected ${created.id}`);
    check(typeof video.progress === 'number' && video.progress >= 0 && video.progress <= 100, `retrieve: progress ${video.progress}`);
  }
  check(video.progress === 100, `completed with progress ${video.progress}`);
  check(video.error === null || video.error === undefined, `completed with error ${JSON.stringify(video.error)}`);
  console.log(`sdk_test: ${video.id} completed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const response = await client.videos.downloadContent(created.id);
  check(response.ok, `downloadContent: status ${response.status}`);
  const type = response.headers.get('content-type') ?? '';
  check(type.startsWith('video/mp4'), `downloadContent: content-type ${type}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  check(bytes.length > 8 && bytes.toString('latin1', 4, 8) === 'ftyp', `downloadContent: ${bytes.length} bytes, not an MP4`);
  const dir = mkdtempSync(join(tmpdir(), 'reel-sdk-'));
  try {
    const file = join(dir, `${created.id}.mp4`);
    writeFileSync(file, bytes);
    const streams = execFileSync('ffprobe', ['-v', 'error', '-show_streams', file], { encoding: 'utf8' });
    check(/^codec_type=video$/m.test(streams) && /^codec_name=h264$/m.test(streams),
      `ffprobe: no h264 video stream in ${file}:\n${streams}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`sdk_test: downloaded ${bytes.length} bytes of H.264 MP4`);

  // videos.extend: the completed (FIFO) video continued with another prompt, 2 s longer.
  let longer = await client.videos.extend({ video: { id: created.id }, prompt: PROMPT, seconds: '2' });
  check(longer.id !== created.id && longer.seconds === '4', `extend: ${JSON.stringify(longer)}`);
  while (longer.status !== 'completed') {
    check(longer.status !== 'failed' && longer.status !== 'cancelled', `extend: ${longer.status}: ${JSON.stringify(longer.error)}`);
    check(Date.now() - started < POLL_TIMEOUT_MS, `extend: ${longer.id} not completed (${longer.status})`);
    await sleep(500);
    longer = await client.videos.retrieve(longer.id);
  }
  check(longer.resumed_frames === 16, `extend: the source's 16 frames were not taken: ${JSON.stringify(longer)}`);
  console.log(`sdk_test: extended ${created.id} into ${longer.id} (${longer.seconds} s)`);

  const ids = [];
  for await (const item of client.videos.list()) ids.push(item.id);
  check(ids.includes(created.id), `list: ${created.id} missing from [${ids.join(', ')}]`);

  const deleted = await client.videos.delete(created.id);
  check(deleted.id === created.id && deleted.deleted === true && deleted.object === 'video.deleted',
    `delete: ${JSON.stringify(deleted)}`);
  await expectError('retrieve after delete', NotFoundError, 404, () => client.videos.retrieve(created.id));
  console.log(`sdk_test: listed and deleted ${created.id}`);

  const bad = await expectError('create with size 7x5', BadRequestError, 400, () =>
    client.videos.create({ model: 'shapes-m', prompt: PROMPT, seconds: '2', size: '7x5' }));
  check(/size/.test(bad.message), `create with size 7x5: the message does not name the size: ${bad.message}`);
  console.log(`sdk_test: size 7x5 refused: ${bad.message}`);
}

try {
  await main();
  console.log('sdk_test: ok');
} catch (err) {
  if (err instanceof CheckFailed) {
    console.error(`sdk_test: FAILED: ${err.message}`);
  } else {
    console.error(`sdk_test: FAILED with ${err?.constructor?.name}: ${err?.message}`);
    if (err?.status !== undefined) console.error(`  status ${err.status}, body ${JSON.stringify(err.error)}`);
  }
  process.exit(1);
}
