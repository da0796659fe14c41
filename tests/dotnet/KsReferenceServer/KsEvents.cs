using System.Text.Json;

namespace KsReferenceServer;

// Event texts in the shape of the KS entries and incidents (shared/ks-event-streaming.md).
public static class KsEvents
{
    public static string Entry(string id, string? userId, DateTime? at = null)
    {
        var t = at ?? DateTime.UtcNow;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["event_category"] = "lock_opened",
            ["event_detail"] = null,
            ["utc_date_time"] = t.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["local_date_time"] = t.AddHours(2).ToString("yyyy-MM-ddTHH:mm:ss"),
            ["lock_id"] = "4d77312f-4a87-41db-a97b-f9d948dcc908",
            ["lock_mac_address"] = "0163813000002C",
            ["lock_customer_reference"] = "Door \"01\" é",
            ["user_id"] = userId,
            ["user_first_name"] = "Ana",
            ["user_last_name"] = "Alves",
            ["user_image_url"] = null,
            ["user_alias"] = "",
            ["iq_id"] = "5dfdc54e-8335-11f0-a2ed-6045bd92d38f",
            ["iq_customer_reference"] = "IQ 01",
            ["iq_mac_address"] = "3B.9E.05",
            ["iq_revision"] = "2.0",
            ["exit_requested"] = false,
            ["access_by"] = "tag",
            ["access_detail"] = "02309289",
        });
    }

    public static string Incident(string id, DateTime? at = null)
    {
        var t = at ?? DateTime.UtcNow;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["type"] = "door_left_open_alarm",
            ["utc_date_time"] = t.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["local_date_time"] = t.AddHours(2).ToString("yyyy-MM-ddTHH:mm:ss"),
            ["lock"] = new Dictionary<string, object?> { ["id"] = "4d77312f-4a87-41db-a97b-f9d948dcc908", ["customer_reference"] = "Door 01" },
            ["iq"] = new Dictionary<string, object?> { ["id"] = "5dfdc54e-8335-11f0-a2ed-6045bd92d38f", ["customer_reference"] = "IQ 01" },
        });
    }
}
