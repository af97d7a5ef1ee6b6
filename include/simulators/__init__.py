"""Faithful local simulators of the five provider APIs, driven by one deterministic business."""
