"""Example LangGraph graphs that implement forgeflow agents (the `forgeflow[langgraph]` extra)."""
