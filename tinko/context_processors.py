from tinko.tenancy import memberships_for


def organization(request):
    """The current organization, the user's role in it, and the org switcher's choices."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return {"current_organization": None, "current_membership": None}

    def switcher():
        # resolve_membership already loaded the list; query only for a request
        # that did not pass through the middleware.
        memberships = getattr(request, "memberships", None)
        return memberships if memberships is not None else list(memberships_for(request.user))

    return {
        "current_organization": membership.organization,
        "current_membership": membership,
        "current_role": membership.role,
        "org_memberships": switcher,  # lazily evaluated by the template
    }


def csp_nonce(request):
    """``{{ csp_nonce }}``: this response's Content-Security-Policy nonce (django-csp makes it on first use)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
