"""batchgen: batch image generation for OpenAI-compatible image APIs."""

__version__ = "0.1.0"
