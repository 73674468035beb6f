"""The mock Kakao AlimTalk provider plugin."""
