"""Rendering helpers shared by the managers', engineers' and admins' views."""
