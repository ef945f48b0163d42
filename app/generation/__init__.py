"""The generation engine: continuously batched decoding per loaded checkpoint (`engine`: its thread;
`scheduler`: who joins and leaves each step; `handle`: a request and what the service gets back),
the LRU of loaded checkpoints (`cache`) and server-sent events (`sse`)."""
