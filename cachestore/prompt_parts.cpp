#include "cachestore/prompt_parts.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <unordered_set>

namespace reel::cachestore {
namespace {

// ---- Words ------------------------------------------------------------------------------------

using WordSet = std::unordered_set<std::string_view>;

const WordSet kDeterminers = {"a", "an", "the", "this", "that", "these", "those", "some",
                              "several", "many", "few", "one", "two", "three", "four", "five",
                              "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "dozen",
                              "dozens", "hundreds", "another", "each", "every", "both", "all",
                              "no", "my", "your", "his", "her", "its", "our", "their"};
// Nouns of quantity that act as determiners before "of": "a flock of birds".
const WordSet kCollectives = {"pair", "couple", "group", "flock", "herd", "pack", "school",
                              "swarm", "bunch", "crowd", "team", "family", "row", "pile", "stack",
                              "lot", "lots", "number", "set", "litter", "pod", "colony", "troop"};
const WordSet kPluralDeterminers = {"these", "those", "some", "several", "many", "few", "two",
                                    "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                                    "eleven", "twelve", "dozen", "dozens", "hundreds", "both", "all"};
const WordSet kPossessives = {"my", "your", "his", "her", "its", "our", "their"};
const WordSet kPronouns = {"i", "you", "he", "she", "it", "we", "they", "me", "him", "us",
                           "them", "itself", "himself", "herself", "themselves", "something",
                           "someone", "everything", "there", "here"};
const WordSet kAuxiliaries = {"is", "are", "was", "were", "be", "being", "been", "am", "has",
                              "have", "had", "does", "do", "did", "can", "could", "will",
                              "would", "may", "might", "should", "must", "gets", "get", "got"};
// Words that end a clause: a scene phrase after them belongs to another subject.
const WordSet kClauseBreaks = {"while", "whilst", "as", "when", "whereas", "then", "until",
                               "before", "after", "because", "so", "but", "causing", "meanwhile",
                               "whenever", "once", "if", "although", "though"};
const WordSet kConjunctions = {"and", "or", "nor", "yet", "who", "which", "that", "where"};
// Prepositions that put the subject somewhere: their noun phrase is the scene.
const WordSet kScenePrepositions = {
    "in",      "on",     "at",      "across",   "through", "along",   "past",       "inside",
    "within",  "among",  "amid",    "amidst",   "around",  "throughout", "atop",    "during",
    "into",    "onto",   "upon",    "under",    "over",    "above",   "below",      "beneath",
    "underneath", "outside", "beyond", "toward", "towards", "near",   "beside",     "by",
    "against", "alongside", "behind", "between", "amongst"};
// Scene prepositions that usually relate one object to another: followed by a second scene
// phrase, their noun phrase is an object and the second phrase the background.
const WordSet kRelationalPrepositions = {"near", "beside", "by", "against", "alongside", "behind",
                                         "between"};
// Other prepositions: they end a noun phrase but introduce no scene.
const WordSet kOtherPrepositions = {"of", "with", "to", "from", "for", "about", "like", "than",
                                    "without", "off", "out", "up", "down", "via", "per",
                                    "except", "despite", "away", "back", "apart"};
// Multi-word prepositions, longest first; `relational` as above.
struct Compound {
  std::array<std::string_view, 5> words;
  bool relational;
};
const std::array kCompoundPrepositions = {
    Compound{{"on", "the", "left", "side", "of"}, true},
    Compound{{"on", "the", "right", "side", "of"}, true},
    Compound{{"to", "the", "left", "side", "of"}, true},
    Compound{{"to", "the", "right", "side", "of"}, true},
    Compound{{"on", "the", "left", "of"}, true},    Compound{{"on", "the", "right", "of"}, true},
    Compound{{"to", "the", "left", "of"}, true},    Compound{{"to", "the", "right", "of"}, true},
    Compound{{"at", "the", "bottom", "of"}, true},  Compound{{"at", "the", "top", "of"}, true},
    Compound{{"in", "the", "middle", "of"}, false}, Compound{{"in", "the", "center", "of"}, false},
    Compound{{"in", "the", "centre", "of"}, false}, Compound{{"on", "the", "edge", "of"}, false},
    Compound{{"at", "the", "edge", "of"}, false},   Compound{{"on", "the", "side", "of"}, true},
    Compound{{"in", "front", "of", ""}, true},      Compound{{"on", "top", "of", ""}, true},
    Compound{{"in", "between", "", ""}, true},      Compound{{"next", "to", "", ""}, true},
    Compound{{"close", "to", "", ""}, true},        Compound{{"out", "of", "", ""}, false},
};
// Heads of noun phrases that follow a scene preposition without being a scene ("in slow
// motion", "over time", "on a quest").
const WordSet kNonSceneNouns = {
    "time", "motion", "unison", "half", "pieces", "place", "circles", "line", "row", "turn",
    "turns", "tandem", "sync", "love", "style", "order", "detail", "reverse", "response", "fact",
    "silence", "harmony", "excitement", "joy", "fear", "surprise", "panic", "awe", "shock",
    "delight", "adventure", "journey", "cycle", "process", "way", "distance", "left", "right",
    "top", "bottom", "front", "direction", "speed", "pursuit", "search", "preparation", "hand",
    "hands", "mouth", "pairs", "groups", "progress", "midair", "mid-air", "slow-motion",
    "timelapse", "time-lapse", "sequence", "years", "age", "use", "days", "hours", "minutes",
    "seconds", "weeks", "months", "decades", "first", "last", "moment", "moments", "instant",
    "succession", "celebration", "other", "leg", "legs", "foot", "feet", "paw", "paws", "head",
    "tail", "back", "knees", "toes", "wings", "screen", "rhythm", "wait", "flight"};
// What a subject wears: "a man in a grey coat" is not a place.
const WordSet kClothing = {"suit", "shirt", "dress", "apron", "sweater", "vest", "jacket", "coat",
                           "hat", "cap", "uniform", "costume", "gown", "robe", "hoodie", "jeans",
                           "pants", "skirt", "boots", "shoes", "glasses", "sunglasses", "scarf",
                           "raincoat", "tuxedo", "armor", "armour", "overalls", "t-shirt",
                           "pajamas", "kimono", "helmet", "mask", "outfit", "clothes", "attire",
                           "gear", "bikini", "swimsuit", "sweatshirt", "blouse", "shorts", "tie"};
// Verbs of becoming: "into" after them names what something becomes, not where it goes.
const std::array<std::string_view, 30> kChangeVerbStems = {
    "morph", "transform", "turn", "chang", "bloom", "melt", "carv", "grow", "grew", "pop",
    "evolv", "fad", "dissolv", "shift", "transition", "develop", "becom", "ripen", "form", "shap",
    "mold", "cut", "slic", "fold", "split", "break", "shatter", "crumbl", "burst", "hatch"};
// Words that name a scene by themselves: "a fish swimming underwater".
const WordSet kSceneWords = {"underwater", "outdoors", "indoors", "outside", "upstairs",
                             "downstairs", "offshore", "overhead", "ashore", "uphill", "downhill"};
// Openers that are about the footage, not the scene: "a timelapse of ...".
const WordSet kFootageNouns = {"video", "timelapse", "time-lapse", "animation", "clip",
                               "footage", "shot", "close-up", "closeup", "scene", "photo",
                               "picture", "image", "view", "film", "movie", "sequence"};
// Adjectives, to tell "a large sleeping cat" from "a man eating pizza", and "a black and white
// cat" from two subjects.
const WordSet kAdjectives = {
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "black", "brown", "gray",
    "grey", "golden", "silver", "cyan", "magenta", "navy", "beige", "large", "small", "big", "tiny",
    "little", "huge", "giant", "old", "young", "new", "tall", "short", "long", "fat", "thin",
    "cute", "fluffy", "shiny", "bright", "dark", "pale", "wooden", "striped", "spotted", "happy",
    "sad", "angry", "lovely", "beautiful", "colorful", "colourful", "heavy", "wild", "furry",
    "fuzzy", "soft", "hard", "round", "clear", "fresh", "ancient", "elderly", "glossy"};
// -ing, -ed and -ly words that are not verbs or adverbs.
const WordSet kNotVerbs = {
    "king", "ring", "wing", "string", "thing", "spring", "swing", "sling", "building", "ceiling",
    "morning", "evening", "pudding", "stocking", "icing", "clothing", "sibling", "duckling",
    "seedling", "wedding", "ending", "herring", "earring", "railing", "awning", "dumpling",
    "lightning", "sapling", "gosling", "darling", "shilling", "red", "bed", "shed", "sled",
    "hundred", "sacred", "naked", "wicked", "beloved", "butterfly", "dragonfly", "firefly", "lily",
    "family", "belly", "jelly", "holly", "bully", "ally", "fly", "lovely", "friendly", "curly",
    "ugly", "silly", "elderly", "lonely", "early", "jolly", "chilly", "holy", "woolly", "wooly",
    "frilly", "hilly", "oily", "sly", "daily", "lively", "cuddly", "wobbly", "sparkly", "bubbly",
    "prickly", "ghostly", "deadly", "costly", "italy", "july", "reply", "supply", "assembly",
    "anomaly", "rally", "gully", "tally", "rattlesnake"};
// -ing words that name a kind of thing before a noun: "a living room", "a fishing boat".
const WordSet kIngModifiers = {"living", "dining", "swimming", "parking", "sitting", "waiting",
                               "washing", "fishing", "rocking", "sleeping", "shopping", "boxing",
                               "running", "bowling", "skating", "baking", "cooking", "frying",
                               "climbing", "changing", "ironing", "dressing", "drawing", "filling",
                               "racing", "sailing", "walking", "hiking", "camping", "training",
                               "reading", "writing", "mixing", "cutting", "chopping", "spinning"};
// Past participles without "-ed": "a scarf caught on a branch".
const WordSet kIrregularParticiples = {
    "stuck", "left", "set", "hung", "strung", "caught", "held", "built", "made", "frozen",
    "broken", "torn", "worn", "spun", "lit", "laid", "kept", "shot", "sunk", "put", "thrown",
    "blown", "drawn", "grown", "shown", "fallen", "hidden", "ridden", "written", "eaten", "bitten",
    "taken", "shaken", "spread", "bent", "dug", "bound", "wound", "swept", "struck", "stolen",
    "woven", "sewn", "sold", "found", "brought", "fed", "led", "cast", "spilt", "split"};
// Nouns whose plural is the singular: "a fish swims", "two fish swim".
const WordSet kSameInPlural = {"fish", "sheep", "deer", "moose", "bison", "salmon", "trout",
                               "squid", "shrimp", "aircraft", "series", "species"};
// Verbs of moving along something: "up" and "down" after them lead to a place.
const std::array<std::string_view, 24> kMovementVerbStems = {
    "climb", "slid", "slide", "tumbl", "run", "ran", "walk", "roll", "scurr", "hik", "rac", "ski",
    "skat", "rid", "rode", "fall", "fell", "crawl", "hop", "jump", "march", "stroll", "wander",
    "cycl"};
const WordSet kIrregularPlurals = {"people", "children", "men", "women", "mice", "geese", "feet",
                                   "teeth", "sheep", "fish", "deer", "oxen", "cattle", "police"};
// Base forms of verbs common in video prompts. A word is read as a verb from this list only
// after a noun: "-s" forms after a singular one ("a dog sits"), base forms after a plural one
// ("two otters glide").
const WordSet kVerbs = {
    "walk", "run", "sit", "stand", "drive", "fly", "swim", "jump", "hop", "climb", "ride", "eat",
    "drink", "play", "dance", "sing", "read", "write", "paint", "draw", "cook", "bake", "throw",
    "catch", "kick", "hit", "chase", "follow", "lead", "pull", "push", "carry", "hold", "lift",
    "drop", "fall", "roll", "spin", "rotate", "turn", "move", "float", "drift", "glide", "sail",
    "paddle", "surf", "skate", "ski", "slide", "slip", "crawl", "creep", "sneak", "hide", "peek",
    "look", "watch", "stare", "gaze", "smile", "laugh", "cry", "shout", "bark", "howl", "roar",
    "growl", "chirp", "whistle", "talk", "speak", "chat", "wave", "nod", "shake", "clap", "point",
    "reach", "grab", "pick", "plant", "dig", "grow", "bloom", "wilt", "fade", "melt", "freeze",
    "burn", "glow", "shine", "sparkle", "flicker", "flash", "blink", "change", "transform", "morph",
    "become", "shrink", "swell", "expand", "open", "close", "fill", "pour", "spill", "splash",
    "drip", "flow", "rise", "sink", "descend", "ascend", "land", "take", "make", "build", "break",
    "crack", "shatter", "explode", "pop", "burst", "fold", "unfold", "wrap", "tie", "cut", "slice",
    "chop", "stir", "mix", "wash", "clean", "sweep", "brush", "comb", "dry", "wipe", "sleep",
    "rest", "lie", "lounge", "relax", "graze", "feed", "hunt", "stalk", "pounce", "prowl", "lurk",
    "perch", "peck", "flap", "soar", "hover", "dive", "leap", "bounce", "skip", "stroll", "wander",
    "march", "trot", "gallop", "race", "rush", "dash", "hurry", "zoom", "cruise", "travel", "cross",
    "pass", "enter", "exit", "leave", "arrive", "approach", "return", "go", "come", "wait", "stay",
    "remain", "pose", "perform", "practice", "train", "exercise", "stretch", "bend", "bow", "kneel",
    "squat", "crouch", "hug", "kiss", "greet", "meet", "fight", "box", "wrestle", "punch", "teach",
    "learn", "study", "work", "type", "sew", "knit", "weave", "fix", "repair", "carve", "sculpt",
    "hammer", "drill", "mow", "rake", "harvest", "gather", "collect", "sort", "stack", "arrange",
    "decorate", "ignite", "blow", "inflate", "deflate", "tow", "haul", "drag", "deliver", "sell",
    "buy", "serve", "toast", "fry", "grill", "roast", "boil", "simmer", "chew", "bite", "lick",
    "sip", "gulp", "swallow", "sniff", "smell", "taste", "touch", "pet", "stroke", "scratch",
    "groom", "bathe", "sway", "rock", "wobble", "shiver", "tremble", "vibrate", "stomp", "tap",
    "knock", "buzz", "hum", "strum", "drum", "conduct", "direct", "film", "photograph", "shoot",
    "aim", "launch", "orbit", "erupt", "flood", "blossom", "sprout", "wither", "decay", "rust",
    "darken", "brighten", "dim", "heat", "evaporate", "dissolve", "crumble", "collapse", "tumble",
    "topple", "wade", "fish", "dock", "park", "stop", "start", "explore", "search", "emerge",
    "appear", "disappear", "vanish", "hatch", "waddle", "strut", "display", "preen", "spread",
    "scurry", "scamper", "dart", "flutter", "sting", "scuttle", "slither", "coil", "embark",
    "nurture", "emit", "cast", "reflect", "hang", "swing", "lean", "rub", "shift", "jog", "sprint",
    "tiptoe", "limp", "stumble", "trip", "sneeze", "yawn", "lay", "fetch", "nibble", "munch",
    "gnaw", "weather", "bask", "sunbathe", "wiggle", "twirl", "twist", "whirl", "circle", "soak",
    "drench", "wear", "put", "place", "set", "get", "give", "show", "use", "try", "keep", "let",
    "help", "see", "hear", "feel", "find", "bring", "send", "fire", "light", "smoke", "steam",
    "discuss", "conjure", "motivate", "negotiate", "explain", "investigate", "interview", "design",
    "rescue", "summon", "chatter", "croak", "rummage", "nap", "spray", "engage", "share",
    "captivate", "prune", "tend", "collide", "bump", "press", "imprint", "tug", "brake", "dribble",
    "snatch", "strike", "sharpen", "remove", "host", "juggle", "sketch", "dangle", "pedal", "trek",
    "hike", "bound", "stride", "swoop", "patrol", "guard", "scan", "check", "visit", "welcome",
    "celebrate", "cheer", "mop", "vacuum", "iron", "ripen", "tarnish", "rot", "thaw", "fog", "sag",
    "droop", "glisten", "gleam", "twinkle", "shimmer", "trickle"};

bool is_number(std::string_view word) {
  return !word.empty() && std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; });
}

template <size_t N>
bool starts_with_any(std::string_view word, const std::array<std::string_view, N>& stems) {
  return std::any_of(stems.begin(), stems.end(),
                     [word](std::string_view stem) { return word.substr(0, stem.size()) == stem; });
}

bool ends_with(std::string_view word, std::string_view suffix) {
  return word.size() >= suffix.size() && word.substr(word.size() - suffix.size()) == suffix;
}

bool looks_plural(std::string_view word) {
  if (kIrregularPlurals.contains(word) || kSameInPlural.contains(word)) return true;
  if (word.find('\'') != std::string_view::npos) return false;  // "cat's", "axe's"
  return word.size() > 2 && ends_with(word, "s") && !ends_with(word, "ss") &&
         !ends_with(word, "us") && !ends_with(word, "is") && !ends_with(word, "ous");
}

// "drives" -> drive, "flies" -> fly, "watches" -> watch, "hops" -> hop.
bool is_third_person_verb(std::string_view word) {
  if (!looks_plural(word) || kIrregularPlurals.contains(word)) return false;
  std::string_view stem = word.substr(0, word.size() - 1);
  if (kVerbs.contains(stem)) return true;
  if (ends_with(word, "es") && kVerbs.contains(word.substr(0, word.size() - 2))) return true;
  if (ends_with(word, "ies")) {
    std::string base(word.substr(0, word.size() - 3));
    base += 'y';
    return kVerbs.contains(base);
  }
  return false;
}

// ---- Tokens -----------------------------------------------------------------------------------

struct Token {
  std::string text;      // lower-case word, or "," for any clause punctuation
  bool boundary = false;  // punctuation between clauses
};

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

std::vector<Token> tokenize(std::string_view text) {
  std::vector<Token> tokens;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) tokens.push_back(Token{std::move(word), false});
    word.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (is_word_byte(c)) {
      word.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : text[i]);
      continue;
    }
    bool inside_word = !word.empty() && i + 1 < text.size() &&
                       is_word_byte(static_cast<unsigned char>(text[i + 1]));
    if ((c == '\'' || c == '-') && inside_word) {
      word.push_back(text[i]);
      continue;
    }
    flush();
    bool clause_mark = c == ',' || c == ';' || c == ':' || c == '.' || c == '!' || c == '?' ||
                       c == '(' || c == ')';
    if (clause_mark && !tokens.empty() && !tokens.back().boundary) tokens.push_back(Token{",", true});
  }
  flush();
  while (!tokens.empty() && tokens.back().boundary) tokens.pop_back();
  return tokens;
}

std::string join(const std::vector<Token>& tokens, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    if (tokens[i].boundary) continue;
    if (!out.empty()) out += ' ';
    out += tokens[i].text;
  }
  return out;
}

// ---- Shapes world -----------------------------------------------------------------------------

// object := "a" word{1,4} motion; motion := "moving" word | "standing still" | "bouncing";
// prompt := object ("and" object)* "on" "a" word{1,3} "background".
std::optional<PromptParts> split_shapes_prompt(const std::vector<Token>& tokens) {
  auto word = [&](size_t i) -> std::string_view {
    return i < tokens.size() && !tokens[i].boundary ? std::string_view(tokens[i].text) : "";
  };
  PromptParts parts;
  size_t i = 0;
  while (true) {
    size_t begin = i;
    if (word(i) != "a") return std::nullopt;
    ++i;
    size_t words = 0;
    while (!word(i).empty() && word(i) != "moving" && word(i) != "standing" &&
           word(i) != "bouncing" && words < 5) {
      ++i;
      ++words;
    }
    if (words < 1 || words > 4) return std::nullopt;
    if (word(i) == "moving" && !word(i + 1).empty()) {
      i += 2;
    } else if (word(i) == "standing" && word(i + 1) == "still") {
      i += 2;
    } else if (word(i) == "bouncing") {
      i += 1;
    } else {
      return std::nullopt;
    }
    parts.objects.push_back(join(tokens, begin, i));
    if (word(i) != "and") break;
    ++i;
  }
  if (word(i) != "on" || word(i + 1) != "a") return std::nullopt;
  size_t begin = i + 1;
  i += 2;
  size_t words = 0;
  while (!word(i).empty() && word(i) != "background") ++i, ++words;
  if (words < 1 || words > 3 || word(i) != "background" || i + 1 != tokens.size()) return std::nullopt;
  parts.background = join(tokens, begin, i + 1);
  return parts;
}

// ---- Natural prompts --------------------------------------------------------------------------

enum class Stop { end, boundary, verb, preposition, conjunction, pronoun, limit };

// What a noun phrase is in its clause, which decides the verb forms that can end it.
enum class Role {
  subject,      // "a dog sits", "a pear ripens to gold"
  plural_verb,  // followed by a plural verb whatever its own number: "a fox and a hare play"
  other,        // after a preposition or verb: "striped road barriers" stays whole
};

struct NounPhrase {
  size_t begin = 0;
  size_t end = 0;       // one past the last token
  int content = 0;      // words after the determiners
  bool possessive = false;  // "its back", "his hand": part of the subject, not a scene
  bool plural = false;      // by its determiners or its last word
  Stop stop = Stop::end;
};

class Reader {
 public:
  explicit Reader(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  PromptParts split() const {
    size_t start = skip_opener();
    std::vector<NounPhrase> subjects;
    NounPhrase subject = noun_phrase(start, Role::subject);
    if (subject.content == 0) return {};
    subjects.push_back(subject);
    // "three ducks and two geese swim ...": more subjects joined by "and".
    while (subjects.size() < 3 && subjects.back().stop == Stop::conjunction &&
           word(subjects.back().end) == "and") {
      NounPhrase next = noun_phrase(subjects.back().end + 1, Role::plural_verb);
      if (next.content == 0) break;
      subjects.push_back(next);
    }
    const size_t end_of_subjects = subjects.back().end;
    const bool plural_subject = subjects.size() > 1 || subjects.back().plural;

    PromptParts parts;
    for (const NounPhrase& s : subjects) parts.objects.push_back(join(tokens_, s.begin, s.end));
    const std::string last_subject = parts.objects.back();
    // A place phrase that describes the subject ("a paper boat on a pond drifts slowly"): the
    // background if the clause names no other place.
    std::optional<NounPhrase> described_place;
    bool saw_from = false;
    for (size_t i = end_of_subjects; i < tokens_.size();) {
      if (ends_clause(i)) break;
      std::string_view w = word(i);
      saw_from = saw_from || w == "from";
      if (kSceneWords.contains(w) && !is_content(i + 1) && !kDeterminers.contains(word(i + 1))) {
        parts.background = w;  // "swimming underwater", "playing outside"
        return parts;
      }
      bool describes_subject = i == end_of_subjects;
      if (describes_subject && w == "with") {  // "an artist with a grey beard painting ..."
        NounPhrase np = noun_phrase(i + 1, plural_subject ? Role::plural_verb : Role::subject);
        if (np.content > 0 && np.stop == Stop::verb) {
          parts.objects.back().append(1, ' ').append(join(tokens_, i, np.end));
          i = np.end;
          continue;
        }
      }
      size_t after = 0;
      bool relational = false;
      if (!scene_preposition(i, after, relational) ||
          (w == "into" && (saw_from || follows_change_verb(i)))) {  // "melting into a puddle"
        ++i;
        continue;
      }
      Role role = !describes_subject ? Role::other : plural_subject ? Role::plural_verb : Role::subject;
      NounPhrase scene = noun_phrase(after, role);
      if (!is_scene(scene)) {
        i = std::max(after, scene.end);
        continue;
      }
      // "a man in a grey coat reading ...": a phrase right after the subject and followed by its
      // verb describes the subject.
      if (describes_subject && scene.stop == Stop::verb) {
        if (!kClothing.contains(word(scene.end - 1))) described_place = scene;
        parts.objects.back().append(1, ' ').append(join(tokens_, i, scene.end));
        i = scene.end;
        continue;
      }
      size_t second_after = 0;
      bool second_relational = false;
      if (relational && scene_preposition(scene.end, second_after, second_relational)) {
        NounPhrase background = noun_phrase(second_after);
        if (is_scene(background)) {
          parts.objects.push_back(join(tokens_, scene.begin, scene.end));
          parts.background = background_text(background);
          return parts;
        }
      }
      parts.background = background_text(scene);
      return parts;
    }
    if (!described_place) return {};
    parts.objects.back() = last_subject;
    parts.background = join(tokens_, described_place->begin, described_place->end);
    return parts;
  }

 private:
  std::string_view word(size_t i) const {
    return i < tokens_.size() && !tokens_[i].boundary ? std::string_view(tokens_[i].text) : "";
  }

  // Does a two-word preposition ("next to", "close to") start at i?
  bool starts_compound(size_t i) const {
    std::string_view w = word(i);
    return (w == "next" || w == "close") && word(i + 1) == "to";
  }

  // A word that can be part of a noun phrase's body.
  bool is_content(size_t i) const {
    std::string_view w = word(i);
    return !w.empty() && !kScenePrepositions.contains(w) && !kOtherPrepositions.contains(w) &&
           !kConjunctions.contains(w) && !kClauseBreaks.contains(w) && !kAuxiliaries.contains(w) &&
           !kPronouns.contains(w) && !kDeterminers.contains(w) && !is_adverb(w) &&
           !starts_compound(i);
  }

  static bool is_adverb(std::string_view w) {
    return (w.size() >= 4 && ends_with(w, "ly") && !kNotVerbs.contains(w)) ||
           (w.size() > 5 && ends_with(w, "wards")) ||
           (w.size() > 5 && ends_with(w, "ward") && w != "toward");
  }

  static bool is_participle(std::string_view w) {
    return w.size() >= 4 && (ends_with(w, "ing") || ends_with(w, "ed")) && !kNotVerbs.contains(w);
  }

  // Is word i a verb (or adverb) that ends a noun phrase whose last word is `previous`?
  // `plural` is what the determiners say.
  bool is_verb(size_t i, std::string_view previous, bool plural, Role role) const {
    std::string_view w = word(i);
    // The first word after "of" starts a new phrase: "the edge of a rolling pin".
    if (previous.empty()) return false;
    bool after_plural = looks_plural(previous);
    if (kNotVerbs.contains(w)) {
      // "a boy building a snowman", "two children swing", but "a tall building".
      return kDeterminers.contains(word(i + 1)) || (after_plural && kVerbs.contains(w));
    }
    if (is_adverb(w)) return true;
    if (kIrregularParticiples.contains(w) && !is_content(i + 1)) return true;
    bool next_is_noun = is_content(i + 1) && !kSceneWords.contains(word(i + 1));
    bool modifies_next = (kAdjectives.contains(previous) || kIngModifiers.contains(w)) && next_is_noun;
    if (w.size() >= 5 && ends_with(w, "ing")) return !modifies_next;
    if (w.size() >= 4 && ends_with(w, "ed") && !ends_with(w, "eed")) return !is_content(i + 1);
    // "-s" after a singular noun: a known verb, or, in a subject, any word followed by a
    // preposition, article or adverb ("a pear ripens to gold"). Not after an adjective:
    // "shimmering lakes".
    bool after_noun = !kAdjectives.contains(previous) && !is_participle(previous) &&
                      !kIrregularParticiples.contains(previous) &&
                      (!after_plural || kSameInPlural.contains(previous));
    if (!plural && after_noun && looks_plural(w) && role != Role::plural_verb) {
      if (is_third_person_verb(w)) return true;
      bool next_is_function_word = !word(i + 1).empty() && !is_content(i + 1);
      if (role == Role::subject && next_is_function_word && !kIrregularPlurals.contains(w)) return true;
    }
    if ((after_plural || role == Role::plural_verb) && kVerbs.contains(w)) return true;
    // "two trains collide at a crossing": a plural subject's verb before a preposition.
    std::string_view next = word(i + 1);
    return role == Role::subject && after_plural && !looks_plural(w) &&
           (kScenePrepositions.contains(next) || is_adverb(next));
  }

  NounPhrase noun_phrase(size_t i, Role role = Role::other) const {
    NounPhrase np;
    np.begin = i;
    while (true) {
      std::string_view w = word(i);
      if (kCollectives.contains(w) && word(i + 1) == "of") {
        np.plural = true;
        i += 2;
      } else if (kDeterminers.contains(w) || is_number(w)) {
        np.plural = np.plural || kPluralDeterminers.contains(w) || (is_number(w) && w != "1");
        np.possessive = np.possessive || kPossessives.contains(w);
        ++i;
      } else {
        break;
      }
    }
    const bool determiner_plural = np.plural;
    std::string_view previous;
    bool took_of = false;
    while (true) {
      std::string_view w = word(i);
      if (i >= tokens_.size()) return finish(np, i, Stop::end);
      if (tokens_[i].boundary) return finish(np, i, Stop::boundary);
      // "a cup of coffee", once per phrase.
      if (w == "of" && np.content > 0 && !took_of &&
          (is_content(i + 1) || kDeterminers.contains(word(i + 1)))) {
        took_of = true;
        ++i;
        while (kDeterminers.contains(word(i))) ++i;
        previous = {};
        continue;
      }
      // "a black and white cat".
      if (w == "and" && kAdjectives.contains(previous) && kAdjectives.contains(word(i + 1)) &&
          is_content(i + 2)) {
        i += 2;
        ++np.content;
        continue;
      }
      if (kScenePrepositions.contains(w) || kOtherPrepositions.contains(w) || starts_compound(i)) {
        return finish(np, i, Stop::preposition);
      }
      if (kConjunctions.contains(w) || kClauseBreaks.contains(w)) return finish(np, i, Stop::conjunction);
      if (kAuxiliaries.contains(w)) return finish(np, i, Stop::verb);
      if (kPronouns.contains(w) || kDeterminers.contains(w)) return finish(np, i, Stop::pronoun);
      if (np.content > 0 && is_verb(i, previous, determiner_plural, role)) {
        return finish(np, i, Stop::verb);
      }
      if (np.content >= 6) return finish(np, i, Stop::limit);
      ++np.content;
      np.plural = determiner_plural || looks_plural(w);
      previous = w;
      ++i;
    }
  }

  static NounPhrase finish(NounPhrase np, size_t end, Stop stop) {
    np.end = end;
    np.stop = stop;
    return np;
  }

  // A noun phrase that can be a place: not "its back", "it", "slow motion" or "the left".
  bool is_scene(const NounPhrase& np) const {
    if (np.content == 0 || np.possessive || kNonSceneNouns.contains(word(np.end - 1)) ||
        kPronouns.contains(word(np.begin))) {
      return false;
    }
    // "upon reaching the end": a verb used as a noun, with its own object.
    std::string_view last = word(np.end - 1);
    return !(np.content == 1 && ends_with(last, "ing") && kDeterminers.contains(word(np.end)));
  }

  // Is the word before "into" at i (an adverb between allowed) a verb of becoming?
  bool follows_change_verb(size_t i) const {
    for (size_t back = 1; back <= 2 && back <= i; ++back) {
      std::string_view w = word(i - back);
      if (starts_with_any(w, kChangeVerbStems)) return true;
      if (!is_adverb(w)) break;
    }
    return false;
  }

  // Where the subject begins: past "a timelapse of", "there is", ...
  size_t skip_opener() const {
    if ((word(0) == "there" || word(0) == "here") && (word(1) == "is" || word(1) == "are")) return 2;
    for (size_t i = 0; i < 4 && i + 1 < tokens_.size(); ++i) {
      if (kFootageNouns.contains(word(i)) && word(i + 1) == "of") return i + 2;
      if (!is_content(i) && !kDeterminers.contains(word(i))) break;
    }
    return 0;
  }

  // Does a scene preposition start at i? Sets `after` to the token past it.
  bool scene_preposition(size_t i, size_t& after, bool& relational) const {
    for (const Compound& compound : kCompoundPrepositions) {
      size_t n = 0;
      while (n < compound.words.size() && !compound.words[n].empty() &&
             word(i + n) == compound.words[n]) {
        ++n;
      }
      if (n > 0 && (n == compound.words.size() || compound.words[n].empty())) {
        if (compound.words[0] == "out") return false;  // "out of": leaving, not a place
        after = i + n;
        relational = compound.relational;
        return true;
      }
    }
    std::string_view w = word(i);
    // "rolling down a grassy slope", but not "climbs down from a tree" or "sets up a tripod".
    bool along_slope = (w == "up" || w == "down") && kDeterminers.contains(word(i + 1)) &&
                       i > 0 && starts_with_any(word(i - 1), kMovementVerbStems);
    if (!kScenePrepositions.contains(w) && !along_slope) return false;
    after = i + 1;
    relational = kRelationalPrepositions.contains(w);
    return true;
  }

  // Does the clause of the subject end at token i?
  bool ends_clause(size_t i) const {
    if (i >= tokens_.size()) return true;
    if (tokens_[i].boundary) {
      // ", slowly settling on the sand" continues the same subject.
      std::string_view next = word(i + 1);
      return !(is_adverb(next) || (next.size() >= 5 && ends_with(next, "ing")));
    }
    std::string_view w = word(i);
    if (kClauseBreaks.contains(w)) return true;
    if (w == "and" || w == "but") {
      std::string_view next = word(i + 1);
      if (next == "he" || next == "she" || next == "it" || next == "they" || next == "we") return true;
      NounPhrase np = noun_phrase(i + 1, Role::subject);
      return np.content > 0 && np.stop == Stop::verb;
    }
    return false;
  }

  // If "from left to right" (or "from top to bottom", ...) starts at i, the token past it.
  size_t skip_direction(size_t i) const {
    if (word(i) != "from") return i;
    auto side = [](std::string_view w) {
      return w == "left" || w == "right" || w == "top" || w == "bottom";
    };
    size_t j = i + 1;
    if (word(j) == "the") ++j;
    if (!side(word(j)) || word(j + 1) != "to") return i;
    j += 2;
    if (word(j) == "the") ++j;
    return side(word(j)) ? j + 1 : i;
  }

  // The scene phrase and the place phrases that follow it: "a stone bridge on a foggy morning",
  // "the reef (from left to right) in the bay".
  std::string background_text(const NounPhrase& scene) const {
    std::vector<Token> kept(tokens_.begin() + static_cast<std::ptrdiff_t>(scene.begin),
                            tokens_.begin() + static_cast<std::ptrdiff_t>(scene.end));
    size_t i = scene.end;
    while (true) {
      i = skip_direction(i);
      size_t after = 0;
      bool relational = false;
      if (!scene_preposition(i, after, relational)) break;
      NounPhrase next = noun_phrase(after);
      if (!is_scene(next)) break;
      kept.insert(kept.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(i),
                  tokens_.begin() + static_cast<std::ptrdiff_t>(next.end));
      i = next.end;
    }
    return join(kept, 0, kept.size());
  }

  std::vector<Token> tokens_;
};

}  // namespace

PromptParts split_prompt(std::string_view prompt) {
  std::vector<Token> tokens = tokenize(prompt);
  if (tokens.empty()) return {};
  if (auto shapes = split_shapes_prompt(tokens)) return *shapes;
  return Reader(std::move(tokens)).split();
}

}  // namespace reel::cachestore
