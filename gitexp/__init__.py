"""gitexp: Git-native experiment versioning for machine learning."""

__version__ = "0.1.0"
