"""Realistic demo people and events, deterministic for a given seed and safe to run twice."""

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from profiles.models import Device, DevicePlatform, Event, EventType, Identity, Profile

FIRST = ["Ayşe", "Mehmet", "Elif", "Can", "Zeynep", "Emre", "Selin", "Burak", "Deniz", "Ece",
         "Maria", "John", "Aisha", "Lukas", "Sofia", "Hiroshi", "Olivia", "Mateo", "Nadia", "Ömer"]
LAST = ["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk", "Arslan", "Doğan", "Koç", "Aydın",
        "García", "Smith", "Khan", "Müller", "Rossi", "Tanaka", "Brown", "López", "Haddad", "Kılıç"]
CITIES = [("İstanbul", "Europe/Istanbul"), ("Ankara", "Europe/Istanbul"), ("İzmir", "Europe/Istanbul"),
          ("Berlin", "Europe/Berlin"), ("London", "Europe/London"), ("New York", "America/New_York"),
          ("Tokyo", "Asia/Tokyo"), ("São Paulo", "America/Sao_Paulo")]
PLANS = ["free", "starter", "pro", "enterprise"]
PAGES = ["/", "/pricing", "/blog/welcome", "/docs/getting-started", "/account", "/cart"]
PRODUCTS = [("sku-101", "Çay bardağı seti", 149.9), ("sku-202", "Running shoes", 89.0),
            ("sku-303", "Coffee beans 1kg", 24.5), ("sku-404", "Wireless earbuds", 129.0),
            ("sku-505", "Yoga mat", 35.0)]


def _ascii(text: str) -> str:
    table = str.maketrans("ıİşŞğĞüÜöÖçÇãáéó", "iIsSgGuUoOcCaaeo")
    return text.translate(table).lower()


def _person(rng: random.Random, n: int, now):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, tz = rng.choice(CITIES)
    signed_up = now - timedelta(days=rng.randint(1, 720), minutes=rng.randint(0, 1440))
    return {
        "external_id": f"demo-{n:05d}",
        "email": f"{_ascii(first)}.{_ascii(last)}{n}@example.com",
        "phone": f"+90555{n:07d}" if city in ("İstanbul", "Ankara", "İzmir") else None,
        "time_zone": tz,
        "unsubscribed": rng.random() < 0.05,
        "attributes": {
            "first_name": first, "last_name": last, "city": city, "plan": rng.choice(PLANS),
            "created_at": int(signed_up.timestamp()), "newsletter": rng.random() < 0.6,
            "lifetime_value": round(rng.uniform(0, 2500), 2),
        },
    }, signed_up


def _events(rng: random.Random, signed_up, now, per_person: int):
    span = max(int((now - signed_up).total_seconds()), 60)
    out = [("signed_up", EventType.EVENT, {"source": rng.choice(["organic", "ads", "referral"])}, signed_up)]
    for i in range(per_person - 1):
        at = signed_up + timedelta(seconds=rng.randint(0, span))
        roll = rng.random()
        if roll < 0.45:
            out.append(("page", EventType.PAGE, {"url": rng.choice(PAGES)}, at))
        elif roll < 0.65:
            out.append(("app_opened", EventType.SCREEN, {"screen": rng.choice(["home", "feed", "profile"])}, at))
        elif roll < 0.85:
            sku, title, price = rng.choice(PRODUCTS)
            out.append(("added_to_cart", EventType.EVENT, {"sku": sku, "title": title, "price": price}, at))
        else:
            sku, title, price = rng.choice(PRODUCTS)
            qty = rng.randint(1, 3)
            out.append(("purchase", EventType.EVENT,
                        {"sku": sku, "title": title, "quantity": qty, "total": round(price * qty, 2), "currency": "TRY"},
                        at))
    return out


@transaction.atomic
def seed_demo_people(*, workspace, people: int = 200, events_per_person: int = 20, seed: int = 7) -> dict:
    rng = random.Random(seed)
    now = timezone.now().replace(microsecond=0)
    rows, times = [], {}
    for n in range(1, people + 1):
        fields, signed_up = _person(rng, n, now)
        rows.append(Profile(workspace=workspace, **fields))
        times[fields["external_id"]] = signed_up
    Profile.objects.for_workspace(workspace).bulk_create(rows, ignore_conflicts=True)
    by_id = dict(
        Profile.objects.for_workspace(workspace).filter(external_id__in=times).values_list("external_id", "pk")
    )
    events, devices, identities = [], [], []
    for external_id, signed_up in times.items():
        profile_id = by_id[external_id]
        for i, (name, kind, data, at) in enumerate(_events(rng, signed_up, now, events_per_person)):
            events.append(Event(workspace=workspace, profile_id=profile_id, name=name, type=kind, data=data,
                                timestamp=at, dedupe_id=f"{external_id}-{i}"))
        if rng.random() < 0.4:
            devices.append(Device(workspace=workspace, profile_id=profile_id, platform=rng.choice(DevicePlatform.values),
                                  token=f"demo-token-{external_id}", last_used=now - timedelta(days=rng.randint(0, 30))))
        identities.append(Identity(workspace=workspace, profile_id=profile_id, anonymous_id=f"anon-{external_id}"))
    Event.objects.for_workspace(workspace).bulk_create(events, ignore_conflicts=True, batch_size=2000)
    Device.objects.for_workspace(workspace).bulk_create(devices, ignore_conflicts=True)
    Identity.objects.for_workspace(workspace).bulk_create(identities, ignore_conflicts=True)
    return {
        "people": Profile.objects.for_workspace(workspace).count(),
        "events": Event.objects.for_workspace(workspace).count(),
        "devices": Device.objects.for_workspace(workspace).count(),
    }
