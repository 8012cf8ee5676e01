"""Agents: one readable file per family."""
