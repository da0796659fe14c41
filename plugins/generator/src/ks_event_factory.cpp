#include "ks_event_factory.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "hubflow/json.h"

namespace hubflow::generator {

namespace {

constexpr std::size_t recent_capacity = 64;  // how far back a duplicate may reach

constexpr std::string_view first_names[] = {"Ana",  "Bruno",  "Carla", "Daan",  "Eva",    "Femke", "Gonzalo", "Hugo",
                                            "Inês", "Javier", "Kim",   "Lucía", "Marta",  "Nadia", "Oscar",   "Pieter",
                                            "Rosa", "Sanne",  "Tomás", "Uxue",  "Victor", "Wout",  "Yasmin",  "Zoë"};
constexpr std::string_view last_names[] = {"Alves",  "Bakker",   "Castro",   "de Vries", "Etxeberria", "Fernández",
                                           "García", "Hendriks", "Iglesias", "Jansen",   "Kok",        "López",
                                           "Martín", "Nieto",    "Ortega",   "Peeters",  "Quintana",   "Romero",
                                           "Smit",   "Torres",   "Urrutia",  "Visser",   "Willems",    "Zubiri"};
// Whole-hour and half-hour offsets of places where KS sites are: a site keeps one for its whole life, which
// is enough for local_date_time (daylight saving does not matter to a synthetic stream).
constexpr std::int32_t utc_offsets_s[] = {0,      3600,   7200,  10800, -18000, -21600,
                                          -25200, -10800, 19800, 28800, 32400,  36000};

struct EntrySpec {
    std::string_view category;
    std::string_view detail;  // "" = null
    std::string_view access_by;
    bool exit_requested;
    int who;     // 0 user, 1 nobody, 2 unknown tag
    int weight;  // out of 1000
};
// Opening by tag dominates, as at any office door. Weights add up to 1000.
constexpr EntrySpec entry_specs[] = {
    {"lock_opened", "", "tag", false, 0, 700},
    {"lock_opened", "", "inside_handle", true, 1, 80},
    {"lock_opened", "", "remote", false, 0, 50},
    {"lock_opened", "", "pin_code", false, 0, 40},
    {"lock_rejected", "no_access", "tag", false, 0, 40},
    {"lock_rejected", "no_access", "tag", false, 2, 25},
    {"lock_rejected", "suspended", "tag", false, 0, 10},
    {"lock_rejected", "offline", "tag", false, 0, 10},
    {"office_mode", "start", "tag", false, 0, 10},
    {"office_mode", "end", "tag", false, 0, 10},
    {"easy_office_mode", "start", "tag", false, 0, 5},
    {"easy_office_mode", "end", "tag", false, 0, 5},
    {"privacy_mode", "start", "inside_handle", false, 1, 7},
    {"privacy_mode", "end", "inside_handle", false, 1, 8},
};

struct IncidentSpec {
    std::string_view type;
    int weight;  // out of 1000
};
// Doors left open and their ends are the everyday alarms; tamper and intrusion are rare.
constexpr IncidentSpec incident_specs[] = {
    {"door_left_open_alarm", 250},    {"end_of_door_left_open_alarm", 240},
    {"low_battery_warning", 120},     {"lock_connection_lost", 90},
    {"lock_connection_restored", 90}, {"intrusion_alarm", 60},
    {"end_of_intrusion_alarm", 55},   {"tamper_alarm", 35},
    {"iq_connection_lost", 30},       {"iq_connection_restored", 30},
};

template <typename Spec, std::size_t N>
void fill_table(std::array<std::uint8_t, 1000>& table, const Spec (&specs)[N]) {
    std::size_t slot = 0;
    for (std::size_t k = 0; k < N; ++k)
        for (int w = 0; w < specs[k].weight; ++w)
            table.at(slot++) = static_cast<std::uint8_t>(k);
    if (slot != table.size()) throw std::logic_error("event kind weights must add up to 1000");
}

std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

std::uint64_t threshold_of(double ratio) {
    if (ratio <= 0) return 0;
    if (ratio >= 1) return std::numeric_limits<std::uint64_t>::max();
    return static_cast<std::uint64_t>(std::ldexp(ratio, 64));
}

struct HexTable {
    std::array<char, 512> lower{};
    std::array<char, 512> upper{};
    constexpr HexTable() {
        constexpr char lo[] = "0123456789abcdef";
        constexpr char up[] = "0123456789ABCDEF";
        for (std::size_t i = 0; i < 256; ++i) {
            lower[2 * i] = lo[i >> 4];
            lower[2 * i + 1] = lo[i & 15];
            upper[2 * i] = up[i >> 4];
            upper[2 * i + 1] = up[i & 15];
        }
    }
};
constexpr HexTable hex;

// Days since 1970-01-01 to a civil date (proleptic Gregorian), after H. Hinnant's days_from_civil inverse.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void put2(char* p, unsigned v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
}

// "YYYY-MM-DDTHH:MM:SS" (19 characters) for seconds since the epoch; years outside 0..9999 are clamped,
// which only a nonsensical start_time could reach.
void format_seconds(std::int64_t s, char* p) {
    std::int64_t days = s / 86400;
    std::int64_t rem = s % 86400;
    if (rem < 0) {
        rem += 86400;
        --days;
    }
    std::int64_t y;
    unsigned m, d;
    civil_from_days(days, y, m, d);
    y = std::clamp<std::int64_t>(y, 0, 9999);
    put2(p, static_cast<unsigned>(y / 100));
    put2(p + 2, static_cast<unsigned>(y % 100));
    p[4] = '-';
    put2(p + 5, m);
    p[7] = '-';
    put2(p + 8, d);
    p[10] = 'T';
    put2(p + 11, static_cast<unsigned>(rem / 3600));
    p[13] = ':';
    put2(p + 14, static_cast<unsigned>(rem / 60 % 60));
    p[16] = ':';
    put2(p + 17, static_cast<unsigned>(rem % 60));
}

void append_key(std::string& out, std::string_view key) {
    out += ",\"";
    out += key;
    out += "\":";
}

std::string pad_number(std::int64_t n, std::size_t width) {
    std::string s = std::to_string(n);
    if (s.size() < width) s.insert(0, width - s.size(), '0');
    return s;
}

}  // namespace

KsEventFactory::Rng::Rng(std::uint64_t seed) {
    std::uint64_t state = seed;
    for (auto& word : s)
        word = splitmix64(state);
}

std::uint64_t KsEventFactory::Rng::next() {
    const std::uint64_t result = std::rotl(s[1] * 5, 7) * 9;
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = std::rotl(s[3], 45);
    return result;
}

KsEventFactory::KsEventFactory(KsEventFactoryOptions options)
    : options_(std::move(options)),
      world_rng_(options_.seed),
      rng_(options_.seed ^ 0x6B73206576656E74ULL) {  // a different stream from the same seed
    const auto& o = options_;
    if (o.sites.empty() && o.site_count < 1) throw std::invalid_argument("site_count must be at least 1");
    if (o.users_per_site < 1) throw std::invalid_argument("users_per_site must be at least 1");
    if (o.locks_per_site < 1) throw std::invalid_argument("locks_per_site must be at least 1");
    if (!(o.incident_ratio >= 0 && o.incident_ratio <= 1))
        throw std::invalid_argument("incident_ratio must be between 0 and 1");
    if (!(o.duplicate_ratio >= 0 && o.duplicate_ratio <= 1))
        throw std::invalid_argument("duplicate_ratio must be between 0 and 1");
    if (!(o.events_per_second > 0) || !std::isfinite(o.events_per_second))
        throw std::invalid_argument("events_per_second must be positive");
    if (o.sites.size() > std::numeric_limits<std::uint32_t>::max() / 2 || o.site_count > 1'000'000 ||
        o.users_per_site > 100'000'000 || o.locks_per_site > 100'000'000)
        throw std::invalid_argument("too many sites, users or locks");

    fill_table(entry_table_, entry_specs);
    fill_table(incident_table_, incident_specs);
    incident_threshold_ = threshold_of(o.incident_ratio);
    always_incident_ = o.incident_ratio >= 1;
    duplicate_threshold_ = threshold_of(o.duplicate_ratio);
    always_duplicate_ = o.duplicate_ratio >= 1;
    if (o.duplicate_ratio > 0) recent_.resize(recent_capacity);

    auto since_epoch = o.start.time_since_epoch();
    auto whole = std::chrono::floor<std::chrono::seconds>(since_epoch);
    start_second_ = whole.count();
    start_fraction_ = std::chrono::duration<double>(since_epoch - whole).count();

    std::size_t longest_head = 0, longest_tail = 0;
    for (const auto& spec : entry_specs) {
        EntryKind kind;
        kind.head = "\",\"event_category\":\"";
        kind.head += spec.category;
        kind.head += "\",\"event_detail\":";
        if (spec.detail.empty()) {
            kind.head += "null";
        } else {
            kind.head += '"';
            kind.head += spec.detail;
            kind.head += '"';
        }
        kind.head += ",\"utc_date_time\":\"";
        kind.tail = spec.exit_requested ? "true" : "false";
        append_key(kind.tail, "access_by");
        append_json_string(kind.tail, spec.access_by);
        append_key(kind.tail, "access_detail");
        kind.who = static_cast<Who>(spec.who);
        kind.tag = spec.access_by == "tag";
        longest_head = std::max(longest_head, kind.head.size());
        longest_tail = std::max(longest_tail, kind.tail.size());
        entry_kinds_.push_back(std::move(kind));
    }
    std::size_t longest_incident_head = 0;
    for (const auto& spec : incident_specs) {
        IncidentKind kind;
        kind.head = "\",\"type\":\"";
        kind.head += spec.type;
        kind.head += "\",\"utc_date_time\":\"";
        longest_incident_head = std::max(longest_incident_head, kind.head.size());
        incident_kinds_.push_back(std::move(kind));
    }

    no_user_fragment_ = "null";
    for (std::string_view key : {"user_first_name", "user_last_name", "user_image_url", "user_alias"}) {
        append_key(no_user_fragment_, key);
        no_user_fragment_ += "null";
    }

    // The world: every id and name comes from world_rng_, so the same seed gives the same sites, locks and
    // users whatever the ratios and the event count.
    auto uuid = [this] {
        std::string s;
        append_uuid_with(world_rng_, s);
        return s;
    };
    auto hex_bytes = [this](int n, bool dotted) {
        std::string s;
        for (int i = 0; i < n; ++i) {
            if (dotted && i) s += '.';
            auto b = static_cast<std::size_t>(world_rng_.next() >> 56);
            s.append(&hex.upper[2 * b], 2);
        }
        return s;
    };

    const std::int64_t site_count = o.sites.empty() ? o.site_count : static_cast<std::int64_t>(o.sites.size());
    const std::size_t lock_width = std::max<std::size_t>(2, std::to_string(o.locks_per_site).size());
    std::size_t longest_lock = 0, longest_incident_lock = 0, longest_user = no_user_fragment_.size(), longest_iq = 0;
    sites_.resize(static_cast<std::size_t>(site_count));
    for (std::int64_t si = 0; si < site_count; ++si) {
        Site& site = sites_[static_cast<std::size_t>(si)];
        site.id = o.sites.empty() ? uuid() : o.sites[static_cast<std::size_t>(si)];
        site.utc_offset_s = utc_offsets_s[world_rng_.below(std::size(utc_offsets_s))];
        site.dates.reserve(64);

        const std::string iq_id = uuid();
        const std::string iq_mac = hex_bytes(3, true);
        site.iq_fragment.clear();
        append_key(site.iq_fragment, "iq_id");
        append_json_string(site.iq_fragment, iq_id);
        append_key(site.iq_fragment, "iq_customer_reference");
        append_json_string(site.iq_fragment, "IQ 01");
        append_key(site.iq_fragment, "iq_mac_address");
        append_json_string(site.iq_fragment, iq_mac);
        append_key(site.iq_fragment, "iq_revision");
        append_json_string(site.iq_fragment, "2.0");
        append_key(site.iq_fragment, "exit_requested");
        longest_iq = std::max(longest_iq, site.iq_fragment.size());

        std::string iq_object = "{\"id\":";
        append_json_string(iq_object, iq_id);
        iq_object += ",\"customer_reference\":";
        append_json_string(iq_object, "IQ 01");
        iq_object += ",\"mac_address\":";
        append_json_string(iq_object, iq_mac);
        iq_object += '}';

        site.locks.resize(static_cast<std::size_t>(o.locks_per_site));
        for (std::int64_t li = 0; li < o.locks_per_site; ++li) {
            Lock& lock = site.locks[static_cast<std::size_t>(li)];
            const std::string id = uuid();
            const std::string mac = hex_bytes(7, false);
            const std::string reference = "Door " + pad_number(li + 1, lock_width);
            // Starts by closing the local_date_time string the dates fragment leaves open.
            lock.entry_fragment = "\"";
            append_key(lock.entry_fragment, "lock_id");
            append_json_string(lock.entry_fragment, id);
            append_key(lock.entry_fragment, "lock_mac_address");
            append_json_string(lock.entry_fragment, mac);
            append_key(lock.entry_fragment, "lock_customer_reference");
            append_json_string(lock.entry_fragment, reference);
            append_key(lock.entry_fragment, "user_id");

            lock.incident_fragment = "\",\"lock\":{\"id\":";
            append_json_string(lock.incident_fragment, id);
            lock.incident_fragment += ",\"customer_reference\":";
            append_json_string(lock.incident_fragment, reference);
            lock.incident_fragment += ",\"mac_address\":";
            append_json_string(lock.incident_fragment, mac);
            lock.incident_fragment += "},\"iq\":";
            lock.incident_fragment += iq_object;
            lock.incident_fragment += '}';
            longest_lock = std::max(longest_lock, lock.entry_fragment.size());
            longest_incident_lock = std::max(longest_incident_lock, lock.incident_fragment.size());
        }

        site.users.resize(static_cast<std::size_t>(o.users_per_site));
        for (auto& user : site.users) {
            user.id = uuid();
            const auto first = first_names[world_rng_.below(std::size(first_names))];
            const auto last = last_names[world_rng_.below(std::size(last_names))];
            user.fragment.clear();
            append_json_string(user.fragment, user.id);
            append_key(user.fragment, "user_first_name");
            append_json_string(user.fragment, first);
            append_key(user.fragment, "user_last_name");
            append_json_string(user.fragment, last);
            append_key(user.fragment, "user_image_url");
            user.fragment += "null";
            append_key(user.fragment, "user_alias");
            user.fragment += "\"\"";
            user.tag = '"' + pad_number(static_cast<std::int64_t>(world_rng_.below(100'000'000)), 8) + '"';
            longest_user = std::max(longest_user, user.fragment.size());
        }
        site_ids_.push_back(site.id);
    }

    constexpr std::size_t id_part = 7 + 36;  // {"id":" + uuid
    constexpr std::size_t dates_part = 20 + 21 + 19;
    const std::size_t entry_max =
        id_part + longest_head + dates_part + longest_lock + longest_user + longest_iq + longest_tail + 10 + 1;
    const std::size_t incident_max = id_part + longest_incident_head + dates_part + longest_incident_lock;
    max_payload_ = std::max(entry_max, incident_max);
}

void KsEventFactory::append_uuid_with(Rng& rng, std::string& out) {
    std::uint64_t a = rng.next();
    std::uint64_t b = rng.next();
    a = (a & ~0xF000ULL) | 0x4000ULL;                         // version 4
    b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
    char buf[36];
    char* p = buf;
    auto put = [&p](std::uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; --i) {
            const auto byte = static_cast<std::size_t>((v >> (8 * i)) & 0xFF);
            *p++ = hex.lower[2 * byte];
            *p++ = hex.lower[2 * byte + 1];
        }
    };
    put(a >> 32, 4);
    *p++ = '-';
    put(a >> 16, 2);
    *p++ = '-';
    put(a, 2);
    *p++ = '-';
    put(b >> 48, 2);
    *p++ = '-';
    put(b, 6);
    out.append(buf, sizeof buf);
}

const std::string& KsEventFactory::dates_for(Site& site, std::int64_t second) {
    if (site.cached_second != second) {
        char buf[20 + 21 + 19];
        format_seconds(second, buf);
        buf[19] = 'Z';
        constexpr std::string_view between = "\",\"local_date_time\":\"";
        std::copy(between.begin(), between.end(), buf + 20);
        format_seconds(second + site.utc_offset_s, buf + 41);
        site.dates.assign(buf, sizeof buf);
        site.cached_second = second;
    }
    return site.dates;
}

KsEventFactory::Made KsEventFactory::make_fresh(std::string& out) {
    const std::size_t id_offset = out.size() + 7;
    out.append("{\"id\":\"", 7);
    append_uuid_with(rng_, out);

    const double t = start_fraction_ + static_cast<double>(index_) / options_.events_per_second;
    const std::int64_t second = start_second_ + static_cast<std::int64_t>(std::floor(t));
    const auto site_index = rng_.below(static_cast<std::uint32_t>(sites_.size()));
    Site& site = sites_[site_index];
    const Lock& lock = site.locks[rng_.below(static_cast<std::uint32_t>(site.locks.size()))];

    if (always_incident_ || (incident_threshold_ && rng_.next() < incident_threshold_)) {
        const IncidentKind& kind = incident_kinds_[incident_table_[rng_.below(1000)]];
        out += kind.head;
        out += dates_for(site, second);
        out += lock.incident_fragment;
        ++incidents_;
        return {KsEventKind::incident, site_index, -1, id_offset};
    }

    const EntryKind& kind = entry_kinds_[entry_table_[rng_.below(1000)]];
    out += kind.head;
    out += dates_for(site, second);
    out += lock.entry_fragment;
    std::int32_t user_index = -1;
    if (kind.who == Who::user) {
        user_index = static_cast<std::int32_t>(rng_.below(static_cast<std::uint32_t>(site.users.size())));
        out += site.users[static_cast<std::size_t>(user_index)].fragment;
    } else {
        out += no_user_fragment_;
    }
    out += site.iq_fragment;
    out += kind.tail;
    if (kind.who == Who::user && kind.tag) {
        out += site.users[static_cast<std::size_t>(user_index)].tag;
    } else if (kind.who == Who::unknown_tag) {
        char buf[10];
        buf[0] = buf[9] = '"';
        std::uint32_t n = rng_.below(100'000'000);
        for (int i = 8; i >= 1; --i, n /= 10)
            buf[i] = static_cast<char>('0' + n % 10);
        out.append(buf, sizeof buf);
    } else {
        out += "null";
    }
    out += '}';
    return {KsEventKind::entry, site_index, user_index, id_offset};
}

KsEventFactory::Made KsEventFactory::make(std::string& out) {
    if (!recent_.empty() && recent_count_ > 0 && (always_duplicate_ || rng_.next() < duplicate_threshold_)) {
        const auto back = rng_.below(static_cast<std::uint32_t>(recent_count_));
        const Recent& r = recent_[(recent_next_ + recent_.size() - 1 - back) % recent_.size()];
        const std::size_t id_offset = out.size() + 7;
        out += r.payload;
        ++duplicates_;
        ++index_;
        return {r.kind, r.site, r.user, id_offset};
    }
    const std::size_t begin = out.size();
    Made made = make_fresh(out);
    if (!recent_.empty()) {
        Recent& slot = recent_[recent_next_];
        slot.payload.assign(out, begin, std::string::npos);
        slot.kind = made.kind;
        slot.site = made.site;
        slot.user = made.user;
        recent_next_ = (recent_next_ + 1) % recent_.size();
        recent_count_ = std::min(recent_count_ + 1, recent_.size());
    }
    ++index_;
    return made;
}

void KsEventFactory::fill_meta(Metadata& meta, const Made& made, std::string_view id) const {
    meta.kind = made.kind == KsEventKind::entry ? "entry" : "incident";
    meta.site_id = sites_[made.site].id;
    if (made.user >= 0)
        meta.user_id = sites_[made.site].users[static_cast<std::size_t>(made.user)].id;
    else
        meta.user_id.clear();
    meta.id.assign(id);
}

void KsEventFactory::next(Event& event) {
    event.payload.clear();
    if (event.payload.capacity() < max_payload_) event.payload.reserve(max_payload_);
    const Made made = make(event.payload);
    fill_meta(event.meta, made, std::string_view(event.payload).substr(made.id_offset, 36));
}

void KsEventFactory::append_next(std::string& out) {
    make(out);
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
    // date-time = full-date "T" full-time; full-time = HH:MM:SS [.frac] ("Z" / ("+"/"-") HH:MM)
    auto digits = [&](std::size_t pos, std::size_t n, int& value) {
        if (pos + n > text.size()) return false;
        value = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (text[i] < '0' || text[i] > '9') return false;
            value = value * 10 + (text[i] - '0');
        }
        return true;
    };
    int year, month, day, hour, minute, second;
    if (!digits(0, 4, year) || text.size() < 20 || text[4] != '-' || !digits(5, 2, month) || text[7] != '-' ||
        !digits(8, 2, day) || (text[10] != 'T' && text[10] != 't') || !digits(11, 2, hour) || text[13] != ':' ||
        !digits(14, 2, minute) || text[16] != ':' || !digits(17, 2, second))
        return std::nullopt;
    static constexpr int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12) return std::nullopt;
    const int days_in_month = month_days[month - 1] + (month == 2 && leap ? 1 : 0);
    if (day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59) return std::nullopt;

    std::size_t pos = 19;
    std::int64_t nanos = 0;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::size_t first = pos;
        std::int64_t scale = 100'000'000;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            nanos += (text[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == first) return std::nullopt;
    }
    int offset_s = 0;
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
        ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        int oh, om;
        if (!digits(pos + 1, 2, oh) || pos + 3 >= text.size() || text[pos + 3] != ':' || !digits(pos + 4, 2, om) ||
            oh > 23 || om > 59)
            return std::nullopt;
        offset_s = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != text.size()) return std::nullopt;

    const std::int64_t seconds =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
        std::int64_t{hour} * 3600 + std::int64_t{minute} * 60 + second - offset_s;
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
}

}  // namespace hubflow::generator
