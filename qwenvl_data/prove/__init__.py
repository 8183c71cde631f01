"""`make prove`: a controlled experiment that trains the bundled model on our own shards and measures
whether it learns to point (grounding) and to read (OCR), against shuffled and constant controls."""
