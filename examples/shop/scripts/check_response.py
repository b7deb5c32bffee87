"""Response script of the push step: a 200 that says `Invalid session` is not a success."""


def handle(data):
    if data["response"]["status"] == 200 and "Invalid session" in data["response"]["body"]:
        data["response_code"] = 4
        data["message"] = "Invalid session"
    return data
