def admin_workspace(request):
    return {
        "ulak_workspace": getattr(request, "workspace", None),
        "ulak_memberships": getattr(request, "memberships", []),
        "ulak_membership": getattr(request, "membership", None),
    }
