"""MetaTool (ToolE): 20,614 single-tool queries over 199 plugins, in our schema."""

from datasets_tfds.metatool.metatool_dataset_builder import Builder
