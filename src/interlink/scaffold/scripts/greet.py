"""A flow step: receives `data` (payload, variables, meta, flow) and returns it."""


def handle(data):
    name = data["payload"].get("name", "world") if isinstance(data["payload"], dict) else "world"
    data["payload"] = {"message": f"{data['flow']['variables']['greeting']}, {name}!"}
    data["message"] = f"greeted {name}"
    return data
