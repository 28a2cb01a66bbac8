"""TFDS builders: MTA-Tools and the external tool-selection benchmarks."""
