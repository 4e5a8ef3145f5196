"""REST endpoints about the caller."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class WalletSerializer(serializers.Serializer):
    address = serializers.CharField()
    chain_id = serializers.IntegerField()
    linked_at = serializers.DateTimeField()


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    date_joined = serializers.DateTimeField()
    is_staff = serializers.BooleanField()
    wallets = WalletSerializer(many=True)
    auth = serializers.ChoiceField(choices=["api_key", "session"])


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The authenticated user")
    def get(self, request):
        user = request.user
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "email": user.email,
            "date_joined": user.date_joined,
            "is_staff": user.is_staff,
            "wallets": list(user.wallets.all()),
            "auth": "api_key" if isinstance(request.auth, str) else "session",
        }
        return Response(MeSerializer(data).data)
