from rest_framework.pagination import CursorPagination as DRFCursorPagination


class CursorPagination(DRFCursorPagination):
    """Stable cursor paging: {"results": [...], "next": url|null, "previous": url|null}."""

    ordering = "-pk"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 1000
