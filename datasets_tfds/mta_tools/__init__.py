"""MTA-Tools: 7 domains, 155 tools, 9,377 query -> tool-call pairs (TFDS builder)."""

from datasets_tfds.mta_tools.mta_tools_dataset_builder import Builder
