"""Kakao AlimTalk in Core: providers, templates, sending, delivery events and fallback (SPEC §6)."""
