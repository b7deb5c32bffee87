"""Scenario 2: check the order number and status in the payload; retry the flow on a status.

- no answer at all (`response` is None): leave it to the default classifier (it retries);
- the order number in the answer is not the one asked for: fail, no retry (code 3);
- status `PENDING`: the warehouse has not finished, so fail the flow and retry it later
  (code 2);
- otherwise continue (code 0) with a payload trimmed to what the next steps need.
"""

RETRY_STATUS = "PENDING"


def handle(data):
    response = data["response"]
    if response is None:
        return data
    order = response.get("json") or {}
    asked = data["payload"].get("order_number")
    if order.get("order_number") != asked:
        data["response_code"] = 3
        data["message"] = f"asked for order {asked}, got {order.get('order_number')!r}"
        return data
    if order.get("status") == RETRY_STATUS:
        data["response_code"] = 2
        data["message"] = f"order {asked} is still {RETRY_STATUS}"
        return data
    data["response_code"] = 0
    data["message"] = f"order {asked} is {order.get('status')}"
    data["payload"] = {"order_number": asked, "status": order.get("status")}
    return data
