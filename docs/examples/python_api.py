# nbagent from Python: a tool of your own, a run, then a streamed run.
# Needs ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL and ANTHROPIC_MODEL_NAME are optional).
from nbagent import Agent, tool
from nbagent.events import TextDelta, ToolCallEvent, ToolResultEvent, TurnEnd

CATALOGUE = {"SKU-42": "Blue mug, 350 ml, 12 EUR", "SKU-43": "Red teapot, 1 l, 30 EUR"}


@tool(read_only=True)
def lookup(sku: str) -> str:
    """Look up a product in the catalogue.

    Args:
        sku: the product code, such as SKU-42
    """
    return CATALOGUE.get(sku, f"No product {sku}.")


agent = Agent(tools=[lookup])  # tools=None: the built-in tools (files, shell, Python)
result = agent.run("What is SKU-42?")
print(result.text)
print(result.stop_reason, [call.name for call in result.tool_calls], result.cost_usd)

# The conversation continues; stream() yields the events as they happen.
for event in agent.stream("And SKU-43?"):
    if isinstance(event, TextDelta):
        print(event.text, end="", flush=True)
    elif isinstance(event, ToolCallEvent):
        print(f"\n[calling {event.call.name} {event.call.input}]")
    elif isinstance(event, ToolResultEvent):
        print(f"[{event.call.name} -> {event.output.summary}]")
    elif isinstance(event, TurnEnd):
        print(f"\n({event.stop_reason})")

agent.reset()  # a new conversation
