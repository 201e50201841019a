"""Readers: raw files in, canonical frames out. Only this layer ever reads text."""
