"""Analyses: canonical frames in, frames out; never reads text."""
