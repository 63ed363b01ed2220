"""App API of campaign versions (docs/journeys.md "Versions"): the versions a campaign has had, one
with its definition, the diff between two, and the dry count of a publish.

Reads need `read`. The dry count (`POST .../publish_preview`) also needs only `read`: it takes the
definition a PUT would take but stores nothing and answers only what a `read` key already sees (the
runs per step, as GET .../metrics shows them, and the definition it sent), so a reviewer or a CI
job can check an edit before a key with `write` publishes it. Another workspace's campaign, or a
version the campaign never had, is a 404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.models import AppScope
from campaigns.api import openapi as doc
from campaigns.api.campaign_views import CAMPAIGN_PATH, CampaignAPIView, replacement, unix
from campaigns.journeys import services, versions
from campaigns.models import Campaign, CampaignVersion
from channels.api.openapi import query
from core.errors import InvalidInput

VERSION_PATH = [*CAMPAIGN_PATH, OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH,
                                                 description="The version's number (1, 2, ...).")]


def version_json(row: CampaignVersion, campaign: Campaign) -> dict:
    return {"number": row.number, "author": row.author, "created": unix(row.created_at),
            "published": row.published or None, "current": row.number == campaign.version}


def _number(value) -> int | None:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


class VersionAPIView(CampaignAPIView):
    def version_or_404(self, campaign: Campaign, number) -> CampaignVersion:
        parsed = _number(number)
        row = versions.find_version(campaign, parsed) if parsed is not None else None
        if row is None:
            raise NotFound("Version not found.")
        return row


class CampaignVersionsView(VersionAPIView):
    @extend_schema(operation_id="campaigns_versions", parameters=CAMPAIGN_PATH, responses={200: doc.VersionList})
    def get(self, request, pk):
        """The campaign's versions, newest first: number, author, time, what the publish did with the
        runs already in the campaign, and which one is current."""
        campaign = self.campaign_or_404(pk)
        return Response({"versions": [version_json(row, campaign) for row in versions.campaign_versions(campaign)]})


class CampaignVersionView(VersionAPIView):
    @extend_schema(operation_id="campaigns_version", parameters=VERSION_PATH, responses={200: doc.VersionResponse})
    def get(self, request, pk, number):
        """One version with its definition."""
        campaign = self.campaign_or_404(pk)
        row = self.version_or_404(campaign, number)
        return Response({"version": {**version_json(row, campaign), "definition": row.definition}})


class CampaignVersionDiffView(VersionAPIView):
    @extend_schema(operation_id="campaigns_version_diff", responses={200: doc.VersionDiffResponse}, parameters=[
        *VERSION_PATH, query("against", "The version to compare with (default: the one before).",
                             type=OpenApiTypes.INT)])
    def get(self, request, pk, number):
        """What changed from version `against` (default: the one before) to this one: top-level fields
        with their old and new values, steps added, removed and changed (field by field)."""
        campaign = self.campaign_or_404(pk)
        row = self.version_or_404(campaign, number)
        against = self.query("against")
        if against is None:
            if row.number == 1:
                raise InvalidInput("against", "version 1 is the first: name a version to compare it with")
            against = row.number - 1
        elif _number(against) is None:
            raise InvalidInput("against", "must be a version number")
        other = self.version_or_404(campaign, against)
        return Response({"diff": {"version": row.number, "against": other.number,
                                  **versions.diff_versions(other.definition, row.definition)}})


class CampaignPublishPreviewView(VersionAPIView):
    required_scopes = {"POST": AppScope.READ}  # counts, saves nothing

    @extend_schema(operation_id="campaigns_publish_preview", parameters=CAMPAIGN_PATH,
                   request=doc.CampaignReplaceBody, responses={200: doc.PublishPreviewResponse})
    def post(self, request, pk):
        """The dry count of a PUT with this body: the definition is checked as PUT checks it (a 400
        names each problem), then the live runs per step and what the new workflow does with each
        (unchanged, changed, removed) are counted. Nothing is stored."""
        campaign = self.campaign_or_404(pk)
        body, publish = replacement(request.data, partial=False)
        return Response({"preview": services.publish_preview(campaign=campaign, definition=body, publish=publish)})
