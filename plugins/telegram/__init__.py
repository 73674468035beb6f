"""The Telegram plugin."""
