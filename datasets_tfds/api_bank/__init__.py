"""API-Bank level-1: 399 single-call dialogues over 49 APIs, in our schema."""

from datasets_tfds.api_bank.api_bank_dataset_builder import Builder
