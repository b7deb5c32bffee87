"""Shape the warehouse's answer into what the ERP expects."""


def handle(data):
    order = data["payload"] if isinstance(data["payload"], dict) else {}
    data["payload"] = {
        "order_id": order.get("order_id"),  # the shop's id, as the warehouse echoes it
        "erp_order": order.get("id"),
        "warehouse_ref": order.get("ref"),
        "channel": data["flow"]["variables"]["channel"],
    }
    return data
