"""sepbook: the package behind the book *Learning to Separate*."""
__version__ = "0.1.0"
