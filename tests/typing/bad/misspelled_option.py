# Checked by tests/typing/test_middleware_options.py, never imported: mypy must refuse it.
from buttress.middleware import ASGIMiddleware


async def app(scope: object, receive: object, send: object) -> None: ...


ASGIMiddleware(app, servce="checkout")  # type: ignore[call-arg]
