"""Semantic cache: a prompt is served a cached answer when an embedding finds a near prompt and verify agrees.

- `embedder`: all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings, sync and batched for asyncio.
- `verify`: compares what two prompts ask for (numbers, negation, antonyms, entities, direction, constraints).
- `matcher`: picks the first candidate above the cosine threshold that verify accepts.
- `evaluation`: precision and recall of a matcher over labelled prompt pairs, per kind.

Nothing here imports the model packages until an `Embedder` is built, so verify and matcher run without them.
"""
