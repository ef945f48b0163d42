"""The generation engine: continuously batched decoding per loaded checkpoint (`engine`), the LRU
of loaded checkpoints (`cache`) and server-sent events (`sse`)."""
