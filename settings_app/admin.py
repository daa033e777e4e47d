from django.contrib import admin

from settings_app.models import ConnectionTestRun, OutgoingEmailSettings


@admin.register(OutgoingEmailSettings)
class OutgoingEmailSettingsAdmin(admin.ModelAdmin):
    exclude = ("password", "client_secret")
    readonly_fields = ("updated_at", "updated_by")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConnectionTestRun)
class ConnectionTestRunAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "trigger", "outcome", "server", "duration_ms")
    list_filter = ("outcome", "trigger")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
