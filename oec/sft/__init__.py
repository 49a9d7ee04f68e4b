"""convert_to_sft: resolved OEC trajectories into chat SFT rows that train only on the expert's turns.

collect (run dirs joined with eval reports) → turns (one per step, in canonical tool-call form) → filters
(repetition) → rows (the student's prompt and answer format, per-turn weights; duplicates dropped) → selection
(cap per instance, split by instance) → JSONL + summary, and with a tokenizer `tokenized` Parquet.
`pipeline.convert` runs it all; `cli.main` is what convert_to_sft.sh calls.
"""
