"""The bounds of every per-stream generation setting, in one torch-free module: the decode engine
checks them (processors.py, logprobs.py, stops.py) and the API's schemas declare them, from here."""

MAX_RANDOM_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts
MAX_LOGPROBS = 5  # alternatives per character, as OpenAI's completions API allows
DEFAULT_PENALTY_WINDOW = 64
MAX_PENALTY_WINDOW = 1024
MAX_NO_REPEAT_NGRAM_SIZE = 64
MAX_REPETITION_PENALTY = 2.0
MAX_ADDITIVE_PENALTY = 2.0  # presence and frequency, either sign
MAX_STOPS = 4
MAX_STOP_LENGTH = 100
# A clamp (models/decode/state.py) holds one cell unit at a value: an LSTM cell's values grow past
# +-1 on long dependencies but rarely past a few tens, so +-100 covers every meaningful forcing.
MAX_CLAMP_VALUE = 100.0
MAX_CLAMP_STEPS = 10_000  # characters a clamp is held for (a generation's or an append's longest)
MAX_CLAMPS = 16  # clamps pending on one state
