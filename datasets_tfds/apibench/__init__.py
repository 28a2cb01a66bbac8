"""Gorilla APIBench: which model-hub API serves an instruction, in our schema."""

from datasets_tfds.apibench.apibench_dataset_builder import Builder
