from django.urls import path, re_path

from datanets import upload_views, views

app_name = "datanets"

urlpatterns = [
    path("", views.datanet_list, name="list"),
    path("new/", views.datanet_create, name="create"),
    path("<slug:slug>/", views.datanet_detail, name="detail"),
    path("<slug:slug>/edit/", views.datanet_edit, name="edit"),
    path("<slug:slug>/contribute/", upload_views.contribute, name="contribute"),
    path("<slug:slug>/uploads/<int:batch_id>/", upload_views.upload_detail, name="upload"),
    path("<slug:slug>/records/<int:pk>/", views.record, name="record"),
    path("<slug:slug>/request-access/", views.request_access, name="request_access"),
    path("<slug:slug>/members/", views.members, name="members"),
    path("<slug:slug>/moderation/", views.moderation, name="moderation"),
    path("<slug:slug>/reputation/", views.reputation, name="reputation"),
    path("<slug:slug>/versions/", views.versions, name="versions"),
    re_path(r"^(?P<slug>[-\w]+)/export\.(?P<fmt>jsonl|csv)$", views.export, name="export"),
]
