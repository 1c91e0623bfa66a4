"""A person's personal API tokens on the pages: listed (never the secret) and revoked.

`/account/tokens` shows them through `_personal_tokens.html`, from `personal_tokens_context`;
the account page includes the same section without that context, where it only links here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from creditpool.domain.errors import NotFound
from creditpool.services import auth
from creditpool.services.users import UserView
from creditpool.storage.unit_of_work import UnitOfWork
from creditpool.web import forms
from creditpool.web.session import Csrf, CurrentUser, PageUow, RedirectTo, flash, render

router = APIRouter(include_in_schema=False)
TOKENS_PAGE = "/account/tokens"
# Where a revocation may lead back to: the pages that include the section, and no other.
BACK_TO = frozenset({TOKENS_PAGE, "/account"})
SHOWN = 200  # a person has a handful; a runaway script's thousands are cut short


def personal_tokens_context(uow: UnitOfWork, user: UserView) -> dict[str, Any]:
    """What _personal_tokens.html needs: the signed-in person's live tokens, oldest first."""
    tokens = auth.list_personal_tokens(uow, user.id, limit=SHOWN + 1)
    return {"personal_tokens": tokens[:SHOWN], "personal_tokens_more": len(tokens) > SHOWN}


@router.get(TOKENS_PAGE)
def tokens_page(request: Request, uow: PageUow, user: CurrentUser) -> HTMLResponse:
    """The signed-in person's API tokens, each with a button that revokes it."""
    return render(request, "account_tokens.html", personal_tokens_context(uow, user), user=user)


@router.post(TOKENS_PAGE + "/{token}/revoke", dependencies=[Csrf])
async def revoke_token(request: Request, token: str, uow: PageUow, user: CurrentUser) -> Response:
    """The token stops working at once."""
    form = await request.form()
    back = forms.text(form, "back", required=False)
    try:
        auth.revoke_personal_token(uow, user_id=user.id, token_id=token)
    except NotFound:
        flash(request, "There is no such token of yours.", "error")
    else:
        flash(request, "Token revoked: it no longer works.")
    raise RedirectTo(back if back in BACK_TO else TOKENS_PAGE)
