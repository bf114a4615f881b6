"""chat_relay: relay an OpenAI chat completion, chunk by chunk, to the client that asked."""
