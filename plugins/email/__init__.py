"""The Email (SMTP) plugin."""
