"""The only package that imports ``cryptography``."""
