// Compiled once so that its precompiled header (torch/torch.h) can be reused by every target.
