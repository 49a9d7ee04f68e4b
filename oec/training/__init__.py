"""Training the student on OEC SFT data (`train_sft.sh`) and closing the loop (`scripts/dagger_loop.sh`).

The loss covers exactly the tokens whose label is not -100, i.e. the expert's turns of each row; student turns are
context only. `transformers.Trainer` does the training (LoRA through peft by default, full fine-tuning as an option)
with a loss that runs the LM head only where a trained token is predicted.
"""
