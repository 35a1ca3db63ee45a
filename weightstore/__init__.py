"""Weights: where they live (layout), fetching real ones, synthesising stand-ins, status."""
