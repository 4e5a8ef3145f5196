from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.api import MeView
from attribution.api import AnchorViewSet, ContributionAttributionViewSet, RewardViewSet
from datanets.api import DatanetViewSet
from modelfactory import views
from serving import openai_api
from serving import views as serving_views
from serving.api import ConversationViewSet, ExportViewSet, ModelViewSet
from training import views as training_views
from training.api import BaseModelViewSet, TrainingJobViewSet

router = DefaultRouter(trailing_slash=True)
router.register("datanets", DatanetViewSet, basename="datanet")
router.register("training/jobs", TrainingJobViewSet, basename="training-job")
router.register("training/base-models", BaseModelViewSet, basename="base-model")
router.register("models", ModelViewSet, basename="model")
router.register("exports", ExportViewSet, basename="export")
router.register("anchors", AnchorViewSet, basename="anchor")
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("contributions", ContributionAttributionViewSet, basename="contribution-attribution")
router.register("rewards", RewardViewSet, basename="reward")

api_v1 = [
    path("me/", MeView.as_view(), name="api-me"),
    *router.urls,
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz/", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("datanets/", include("datanets.urls")),
    path("training/", include("training.urls")),
    path("attribution/", include("attribution.urls")),
    path("models/", training_views.models_list, name="models"),
    path("chat/", serving_views.chat_index, name="chat-index"),
    path("chat/<str:model_id>/", serving_views.chat, name="chat"),
    path("models/<int:job_id>/delete/", training_views.delete_model, name="model-delete"),
    path("v1/models", openai_api.models, name="openai-models"),
    path("v1/chat/completions", openai_api.chat_completions, name="openai-chat"),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/", views.api_guide, name="api-guide"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", template_name="site/swagger_ui.html"),
        name="api-docs",
    ),
]

handler400 = "modelfactory.views.bad_request"
handler403 = "modelfactory.views.permission_denied"
handler404 = "modelfactory.views.page_not_found"
handler500 = "modelfactory.views.server_error"
