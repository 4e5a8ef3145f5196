from django.urls import path

from attribution import views

app_name = "attribution"
urlpatterns = [
    path("me/", views.mine, name="mine"),
    path("records/<int:contribution_id>/", views.record, name="record"),
    path("anchors/", views.anchors, name="anchors"),
    path("anchors/<int:anchor_id>/", views.anchor, name="anchor"),
    path("rewards/", views.epochs, name="epochs"),
    path("rewards/close/", views.close_epoch, name="close-epoch"),
    path("rewards/<int:epoch_number>/claim/", views.claim, name="claim"),
]
