"""SmolLM2-135M-Instruct in Flax NNX from its packaged GGUF: model, tokenizer, tool selection, LoRA."""
