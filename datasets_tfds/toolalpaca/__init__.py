"""ToolAlpaca evaluation sets (Tang et al. 2023): single-function instructions, in our schema."""

from datasets_tfds.toolalpaca.toolalpaca_dataset_builder import Builder
