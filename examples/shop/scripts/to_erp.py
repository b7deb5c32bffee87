"""Shape the warehouse's answer into what the ERP expects."""


def handle(data):
    order = data["payload"] if isinstance(data["payload"], dict) else {}
    data["payload"] = {
        "erp_order": order.get("id"),
        "warehouse_ref": order.get("ref"),
        "channel": data["flow"]["variables"]["channel"],
    }
    return data
