"""The Vercel AI SDK's chat protocol over HTTP: its request in, its UI message stream out (docs/ai-sdk.md)."""
