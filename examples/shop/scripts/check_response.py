"""Response script of the push step: a 200 that says `Invalid session` is not a success.

It runs after every attempt; when no response came (`data["response"]` is None, and
`data["error"]` says why: a timeout, a refused connection), it leaves the decision to the
connector's default classifier, which retries.
"""


def handle(data):
    response = data["response"]
    if response is None:
        return data
    if response["status"] == 200 and "Invalid session" in response["body"]:
        data["response_code"] = 4
        data["message"] = "Invalid session"
    return data
