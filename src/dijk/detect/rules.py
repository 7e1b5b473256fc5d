"""The rule table: every rule has an id, a category, a severity, a paranoia level and a
description; pattern rules also carry a Hyperscan pattern (see ``patterns.py`` for the
pattern dialect: no bare ``.``, ``{B}``/``{E}`` for the start/end of a value).

Paranoia levels follow OWASP CRS: level 1 rules are meant to be safe on ordinary API
traffic, higher levels catch more at the price of more false alarms. Categories are the
``waf.<category>`` reason codes of the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from dijk.detect.findings import CRITICAL, ERROR, NOTICE, WARNING

SQLI = "sqli"
XSS = "xss"
CMDI = "cmdi"
PATH_TRAVERSAL = "path_traversal"
SSRF = "ssrf"
NOSQL = "nosql"
LDAP = "ldap"
SSTI = "ssti"
LOG4SHELL = "log4shell"
PROTOTYPE_POLLUTION = "prototype_pollution"
XXE = "xxe"
GRAPHQL_ABUSE = "graphql_abuse"
CODE_INJECTION = "code_injection"
CRLF = "crlf"
UPLOAD = "upload"
SCANNER = "scanner"
LIMITS = "limits"

CATEGORIES = (
    SQLI,
    XSS,
    CMDI,
    PATH_TRAVERSAL,
    SSRF,
    NOSQL,
    LDAP,
    SSTI,
    LOG4SHELL,
    PROTOTYPE_POLLUTION,
    XXE,
    GRAPHQL_ABUSE,
    CODE_INJECTION,
    CRLF,
    UPLOAD,
    SCANNER,
    LIMITS,
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule. ``pattern`` is None for rules implemented in code."""

    rule_id: str
    category: str
    severity: int
    paranoia: int
    description: str
    pattern: str | None = None
    locations: frozenset[str] | None = None
    # Transforms whose variants this rule ignores (what they produce is not what it means).
    ignored_transforms: frozenset[str] = frozenset()


def _rule(
    rule_id: str,
    category: str,
    severity: int,
    paranoia: int,
    description: str,
    pattern: str | None = None,
    locations: frozenset[str] | None = None,
    ignored_transforms: frozenset[str] = frozenset(),
) -> Rule:
    return Rule(
        rule_id, category, severity, paranoia, description, pattern, locations, ignored_transforms
    )


_REQUEST_LINE = frozenset({"path", "query", "query_name", "header", "cookie"})

# DOM event handler attribute names (a list, not on[a-z]+, so that "online=1" is fine).
_EVENTS = (
    "abort|activate|afterprint|afterscriptexecute|animation(end|iteration|start|cancel)|"
    "auxclick|beforecopy|beforecut|beforeinput|beforepaste|beforeprint|beforetoggle|"
    "beforeunload|begin|blur|bounce|canplay|canplaythrough|change|click|close|contextmenu|"
    "copy|cuechange|cut|dblclick|drag|dragend|dragenter|dragleave|dragover|dragstart|drop|"
    "durationchange|end|ended|error|finish|focus|focusin|focusout|formdata|fullscreenchange|"
    "hashchange|input|invalid|keydown|keypress|keyup|load|loadeddata|loadedmetadata|"
    "loadend|loadstart|message|mousedown|mouseenter|mouseleave|mousemove|mouseout|"
    "mouseover|mouseup|mousewheel|offline|online|pagehide|pageshow|paste|pause|play|"
    "playing|pointer(down|enter|leave|move|out|over|up|rawupdate|cancel)|popstate|progress|"
    "ratechange|readystatechange|repeat|reset|resize|scroll|scrollend|search|seeked|"
    "seeking|select|selectionchange|selectstart|show|start|stalled|storage|submit|suspend|"
    "timeupdate|toggle|touch(start|end|move|cancel)|transition(end|start|run|cancel)|"
    "unhandledrejection|unload|volumechange|waiting|webkit[a-z]+|wheel|filterchange|"
    "contentvisibilityautostatechange|message[a-z]*|synchronous|propertychange|"
    "layoutcomplete|rowenter|rowexit|beforeactivate|beforedeactivate|deactivate|"
    "controlselect|losecapture|move|moveend|movestart|help|zoom"
)

# Commands whose names are also common words ("set", "type", "last", "head", "time")
# are left out: after a separator they would fire on ordinary prose and Markdown.
_SHELL_COMMANDS = (
    "cat|tac|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|socat|bash|sh|zsh|ksh|csh|dash|"
    "python[23]?|perl|ruby|php|lua|ping|nslookup|dig|getent|echo|rm|pwd|"
    "chmod|chown|tftp|ftp|telnet|sleep|ifconfig|ipconfig|systeminfo|sysinfo|cmd|powershell|pwsh|"
    "busybox|base64|xterm|nohup|kill|killall|awk|gawk|sed|tail|printenv|"
    "crontab|mkfifo|sudo|passwd|lastlog|useradd|scp|ssh|uptime|hostname|netstat|ps|lsof|"
    "mkdir|cp|mv|dir|net|reg|certutil|bitsadmin|wmic|tasklist|taskkill|netsh|"
    "strings|xxd|nmap|ssh-keygen|openssl|sh\\.exe|cmd\\.exe|iwr|invoke-webrequest|"
    "invoke-expression|iex|start-process|grep|egrep|tee|dd|tar|gzip|unzip|shutdown|"
    "reboot|halt|chattr|readlink|whereis|which|locate|ifup|iptables|sysctl|modprobe|"
    "mount|fdisk|apt-get|yum|npm|javac|gcc|vim|nano|xargs|strace|ltrace|env|bcdboot|"
    "bcdedit|vssadmin|schtasks|at|rundll32|regsvr32|mshta|cscript|wscript|msiexec"
)
# Commands that are also English words: only after a separator and with an option or an
# absolute path as their argument ("; find /etc -name", "| sort -r"), never in prose.
_WORD_COMMANDS = (
    "find|type|set|last|head|time|date|file|more|less|nice|watch|touch|sort|uniq|"
    "cut|diff|wc|du|df|who|history|alias|export|source|exec|eval|test|timeout|expand|"
    "fold|paste|split|stat|tr|od|hexdump|nl|rev|look|join|comm|column|install|ln|chgrp|"
    "script|service|systemctl|journalctl|crontab|at|batch|logger|wall|write|mail|uconv|"
    "iconv|tree|unset|declare|shift|trap|wait|jobs|fg|bg|disown|umask|ulimit|route|arp|cd|"
    "flock|cpulimit|vi|vim|bridge|ansible[a-z-]*|chef-[a-z]+"
)
# The most telling ones, allowed with looser context (in backticks, after a quote).
_STRONG_COMMANDS = (
    "cat|ls|id|whoami|uname|wget|curl|nc|ncat|netcat|bash|sh|zsh|python[23]?|perl|ping|"
    "nslookup|sleep|pwd|ifconfig|ipconfig|systeminfo|hostname|netstat|getent|busybox|"
    "powershell|cmd|dir|tasklist|net\\s+user|printenv"
)
_SHELL_ARGUMENT = (
    r"(\s*({E}|[;|&<>`)#]|\$\()|\s+[-+/~.$'\"\\*]|\s+[a-z0-9_.+-]*[/.$:=*@][^\s\x00]*|"
    r"\s+[a-z0-9_-]+\s*({E}|[;|&<>`)#])|\s+[a-z0-9_.-]+\s+[\"'/\\-])"
)


def _spread(word: str) -> str:
    """``word:`` with tabs, newlines or other control characters inside it (at least one), as
    browsers read ``ja&Tab;vascript:``; the plain word is left to the stricter rules."""
    gap = r"[\x01-\x1f]"
    forms = []
    for cut in range(1, len(word)):
        head = (gap + "*").join(word[:cut])
        tail = (gap + "*").join(word[cut:])
        forms.append(head + gap + "+" + tail)
    return r"\b(" + "|".join(forms) + r")" + gap + "*:"


RULES: tuple[Rule, ...] = (
    # --- SQL injection -----------------------------------------------------------------
    _rule(
        "sqli-libinjection",
        SQLI,
        CRITICAL,
        1,
        "libinjection recognises the value as SQL injection (strong fingerprint)",
    ),
    _rule(
        "sqli-libinjection-weak",
        SQLI,
        WARNING,
        1,
        "libinjection fingerprint that also occurs in ordinary text (e.g. quoted words)",
    ),
    _rule(
        "sqli-union-select",
        SQLI,
        CRITICAL,
        1,
        "UNION [ALL] SELECT",
        r"\bunion(\s+(all|distinct))?[\s(]+select\b",
    ),
    _rule(
        "sqli-time-function",
        SQLI,
        CRITICAL,
        1,
        "time-based blind SQL: sleep(), benchmark(), pg_sleep(), WAITFOR DELAY, "
        "DBMS_PIPE.RECEIVE_MESSAGE(), HEX(RANDOMBLOB(n))",
        r"\b(sleep|benchmark|pg_sleep|sys\.dbms_lock\.sleep|dbms_lock\.sleep)\s*\(\s*[\d'\"(@]|"
        r"\bwaitfor\s+(delay|time)\s+['\"\d]|\bselect\s+(sleep|benchmark|pg_sleep)\s*\(|"
        # Oracle's pipe wait and SQLite's heavy random blobs (sqlmap's time-based probes).
        r"\bdbms_pipe\s*\.\s*receive_message\s*\(|\brandomblob\s*\(\s*\d{6,}|"
        r"\bhex\s*\(\s*randomblob\s*\(",
    ),
    _rule(
        "sqli-tautology-quoted",
        SQLI,
        CRITICAL,
        1,
        "quote, then OR/AND with a comparison: ' OR 'a'='a, \" or 1=1",
        r"['\")]\s*(or|and|xor|\|\||&&)\s+[('\"`]*\s*[\w'\"`]+\s*[\w'\"`]*\s*"
        r"(=|<>|!=|<=|>=|<|>|\blike\b|\bis\b|\bregexp\b|\brlike\b|\bbetween\b|\bin\s*\()",
    ),
    _rule(
        "sqli-tautology-numeric",
        SQLI,
        CRITICAL,
        1,
        "OR/AND followed by an always-true numeric comparison: or 1=1, and 2>1, "
        "and 7 like 7 (sqlmap's equaltolike)",
        r"\b(or|and|xor|having)\s+\(?\s*(\d+|'\d+'|\"\d+\")\s*(=|<>|!=|<=>|>=|<=|>|<|\s(r?like)\s)\s*"
        r"\(?\s*(\d+|'\d+'|\"\d+\")\s*(\)\s*)?({E}|--|#|/\*|;|\)|'|\"|\s+(and|or|--|#|limit|order|union|group)\b)",
    ),
    _rule(
        "sqli-quote-comment",
        SQLI,
        CRITICAL,
        1,
        "a quote closed and the rest of the statement commented out: admin'--, 1')#",
        r"['\"`]\s*\)*\s*(--(\s|{E}|-)|#\s*{E}|;\s*--|;\s*#)|{B}\s*['\"]?\s*(or|and)\s+[\w'\"]+\s*=\s*[\w'\"]+\s*(#|--)",
    ),
    _rule(
        "sqli-stacked-query",
        SQLI,
        CRITICAL,
        1,
        "a second statement after ';': ; DROP TABLE, ; EXEC, ; DECLARE",
        r";\s*(drop\s+(table|database|procedure|function|view)|truncate\s+table|"
        r"alter\s+(table|user|database)|create\s+(table|user|procedure|function|database)|"
        r"insert\s+into|update\s+[\w\[\]`\"]+\s+set|delete\s+from|exec(ute)?\s+(master\.|xp_|sp_|@|\(|immediate\b)|declare\s+@|"
        r"shutdown\b|select\s|grant\s|revoke\s|begin\s|if\s*\(|waitfor\s)",
    ),
    _rule(
        "sqli-dangerous-function",
        SQLI,
        CRITICAL,
        1,
        "functions and objects used to read files, run commands or map the schema",
        r"\b(load_file|xp_cmdshell|xp_regread|xp_dirtree|sp_oacreate|sp_executesql|"
        r"sp_makewebtask|openrowset|opendatasource|utl_http\.request|utl_inaddr|"
        r"dbms_xmlgen|pg_read_file|pg_ls_dir|lo_import|lo_export|sys_eval|sys_exec|"
        r"extractvalue|updatexml|name_const|exp\(~|geometrycollection|multipoint|"
        r"polygon\s*\(\s*\(?\s*select|json_keys|ctxsys\.drithsx|dbms_utility|"
        r"into\s+(out|dump)file)\b|\binformation_schema\b|\bmysql\.(user|db)\b|"
        r"\bsys\.(objects|tables|columns|databases)\b|\bsysobjects\b|\bsyscolumns\b|"
        r"\bpg_(catalog|shadow|user|tables|database)\b|\ball_tables\b|\buser_tables\b|"
        r"\bsqlite_master\b|\bmsysobjects\b|@@(version|datadir|hostname|basedir|servername|tmpdir)\b",
    ),
    _rule(
        "sqli-error-based",
        SQLI,
        CRITICAL,
        1,
        "functions that leak data through MySQL error messages, and the markers error-based "
        "extraction wraps it in: GTID_SUBSET(CONCAT(0x71..., ELT(5021=5021,1)",
        r"\b(gtid_subset|gtid_subtract|st_latfromgeohash|st_longfromgeohash|"
        r"st_pointfromgeohash)\s*\(|\belt\s*\(\s*\d+\s*=\s*\d+\s*,|"
        r"\bconcat(_ws)?\s*\(\s*0x[0-9a-f]{6,}\s*,",
    ),
    _rule(
        "sqli-boolean-subquery",
        SQLI,
        CRITICAL,
        1,
        "OR/AND followed by a sub-select or string function: and (select ..., or ascii(substring(",
        r"\b(and|or|xor|where|having|when|then|else|&&|\|\|)\s*\(*\s*(select\s|"
        r"(ascii|ord|substr|substring|mid|left|right|length|len|char|chr|hex|unhex|"
        r"concat|concat_ws|group_concat|if|iif|ifnull|isnull|coalesce|case|cast|convert|"
        r"exists|count|database|user|version|schema|current_user|system_user|rand|"
        r"elt|make_set|instr|locate|position|bit_length|md5|sha1|uuid|json_extract|"
        r"json_value|json_query|json_keys|json_length|regexp_substr|regexp_like)\s*\()",
    ),
    _rule(
        "sqli-select-from",
        SQLI,
        CRITICAL,
        1,
        "SELECT of columns/functions FROM a table, with SQL punctuation around it",
        r"({B}|[\s(;'\"`=,])select\s+(\*|@@|null\b|top\s+\d|distinct\s|\d+\s*,|[\w.`\"\[\]]+\s*,\s*[\w.`\"\[\]]+|"
        r"[\w.]+\s*\([^)]*\))[^\x00]*\bfrom\s+[\w.`\"\[\]]+",
    ),
    _rule(
        "sqli-order-group-probe",
        SQLI,
        CRITICAL,
        1,
        "ORDER BY / GROUP BY column probing followed by a comment or quote",
        r"['\")]\s*(order|group)\s+by\s+[\w,\s]+(--|#|/\*|{E})|\b(order|group)\s+by\s+\d+\s*(--|#|/\*)|"
        r"{B}\s*(order|group)\s+by\s+\d+\s*{E}",
    ),
    _rule(
        "sqli-conditional",
        SQLI,
        CRITICAL,
        1,
        "conditional probes: case when ... then, if(..,sleep, iif(",
        r"\bcase\s+when\s[^\x00]+\bthen\b[^\x00]+\b(else|end)\b|"
        r"\bif\s*\(\s*[^\x00]+,\s*(sleep|benchmark|pg_sleep|\d)\s*[(,]",
    ),
    _rule(
        "sqli-postgres-json-operator",
        SQLI,
        CRITICAL,
        1,
        "PostgreSQL JSON containment and casts around quoted JSON: '{\"a\":1}'::jsonb <@ '...'",
        r"'\s*[{\[][^'\x00]{0,256}'\s*(::\s*jsonb?\s*)?(<@|@>|\?\||\?&|#>>?)|"
        r"(<@|@>)\s*'\s*[{\[]|'\s*::\s*jsonb?\s*(<@|@>|->|#>|\?)",
    ),
    _rule(
        "sqli-escaped-quote-breakout",
        SQLI,
        CRITICAL,
        1,
        "a backslash before the quote that closes the string, then OR/AND: \\'or'1",
        r"\\['\"`]\s*(or|and|xor|\|\||&&|union|;)\s*['\"`\d(]",
    ),
    _rule(
        "sqli-email-breakout",
        SQLI,
        CRITICAL,
        1,
        "an e-mail address that closes the string and ends the statement: admin@x.org';",
        r"{B}[^\s'\"`@]+@[^\s'\"`]+['\"`]\s*(;|--|#|/\*)",
    ),
    _rule(
        "sqli-ddl-statement",
        SQLI,
        CRITICAL,
        1,
        "schema changes and stored code: ALTER TABLE .. ADD, CREATE FUNCTION .. RETURNS, "
        "DECLARE @x NVARCHAR, EXEC(@x)",
        r"\balter\s+table\s+[\w`\"\[\].]+\s+(add|drop|change|modify|rename|alter)\b|"
        r"\bcreate\s+(or\s+replace\s+)?(function|procedure|trigger)\s+[\w.`\"\[\]]+\s*\(|"
        r"\bdeclare\s+@\w+\s+(n?(var)?char|int|bigint|table|sysname|cursor)\b|"
        r"\bexec(ute)?\s*\(\s*@|\bbackup\s+database\s+[\w\[\]]+\s+to\s+disk\b|"
        r"\bcreate\s+user\s+[\w'\"@.%-]+\s+identified\s+by\b|"
        r"\bcopy\s+[\w.\"]+(\s*\([^)\x00]*\))?\s+(to|from)\s+(program\b|'\s*/|/)|"
        r"['\"]\s*\|\|\s*[\w.]+\s*\([^)\x00]*\)\s*\|\|\s*['\"]",
    ),
    _rule(
        "sqli-destructive-statement",
        SQLI,
        CRITICAL,
        1,
        "a whole value that is a destructive statement ended by ';' or a comment",
        r"{B}\s*(delete\s+from|drop\s+(table|database)|truncate\s+table|insert\s+into|"
        r"update\s+[\w`\"\[\].]+\s+set)\s+[^\x00]*(;|--|#)",
    ),
    _rule(
        "sqli-cast-or-hint",
        SQLI,
        CRITICAL,
        1,
        "PostgreSQL casts after a call, optimizer hints between OR and a truth value, "
        "MySQL scientific-notation tricks: ...)::int, or /*+ hint */ true, 1.e(ascii",
        r"\)\s*::\s*(int|integer|bigint|text|numeric|jsonb?|bool|boolean)\b|"
        r"\b(or|and)\s*/\*[^*\x00]*\*/\s*(true|false|not\b|\d)|\b\d+\.e\s*\(",
    ),
    _rule(
        "sqli-quote-operator-probe",
        SQLI,
        CRITICAL,
        1,
        "a value that is only an operator between two quotes, the classic probe for a "
        "string concatenated into SQL: '-', '||', \"^\" (not the wildcards * and %: a "
        "quoted wildcard is a search)",
        r"{B}\s*'\s*([-+&^|/]|\|\|)\s*'\s*{E}|{B}\s*\"\s*([-+&^|/]|\|\|)\s*\"\s*{E}",
    ),
    _rule(
        "sqli-quote-cast",
        SQLI,
        CRITICAL,
        1,
        "the value's first quote closes a string and casts it (PostgreSQL error-based "
        "probes): 1'::int--, x'::text)",
        r"{B}[^'\x00]*'\s*::\s*(int[248]?|integer|bigint|smallint|text|varchar|char|numeric|"
        r"decimal|bool|boolean|float[48]?|real|regclass|regproc|oid|xml|bytea|date|inet)\b\s*"
        r"(--|#|/\*|;|\)|=|{E}|\s+(and|or|union)\b)",
    ),
    _rule(
        "sqli-function-call",
        SQLI,
        CRITICAL,
        2,
        "a call of a function that only SQL has: concat(, group_concat(, substring(, "
        "coalesce(, db_name(, current_user(",
        r"\b(ascii|char|chr|concat|concat_ws|group_concat|string_agg|array_agg|listagg|"
        r"substring|substr|mid|coalesce|ifnull|isnull|nullif|nvl|database|schema|"
        r"current_user|session_user|system_user|current_database|current_schema|version|"
        r"load_file|unhex|make_set|elt|find_in_set|instr|db_name|schema_name|object_id|"
        r"table_name|column_name|char_length|bit_length|extractvalue|updatexml|cast|convert|"
        r"rand|md5|sha1|hex|ord|lpad|rpad|quote_ident|regexp_substr|json_extract|"
        r"sqlite_version|randomblob|soundex|starts_with|lo_get|pg_read_file)\s*\(",
    ),
    _rule(
        "sqli-bare-comparison",
        SQLI,
        CRITICAL,
        2,
        "a value that is only an always-true comparison: 1=1, 42<=>42, 'a'='a', 1!=2",
        r"{B}\s*(\d+|'[^'\x00]{0,16}'|\"[^\"\x00]{0,16}\")\s*(=|==|!=|<>|<=>|\blike\b|"
        r"\bregexp\b|\bglob\b)\s*(\d+|'[^'\x00]{0,16}'|\"[^\"\x00]{0,16}\")\s*{E}",
    ),
    _rule(
        "sqli-hex-or-char-encoding",
        SQLI,
        ERROR,
        2,
        "long hex literals and CHAR() chains used to avoid quotes",
        r"\b0x[0-9a-f]{16,}\b|\bchar\s*\(\s*\d+\s*(,\s*\d+\s*){2,}\)|"
        r"\b(char|chr)\s*\(\s*\d+\s*\)\s*(\+|\|\||,)\s*(char|chr)\s*\(",
    ),
    _rule(
        "sqli-mysql-comment-keyword",
        SQLI,
        CRITICAL,
        1,
        "MySQL executable comment hiding a keyword: /*!50000union*/",
        r"/\*!\d*\s*(union|select|and|or|from|where|insert|update|delete|drop|having)\b|"
        r"/\*!\d*[^*]{0,32}['\"]",
    ),
    _rule(
        "sqli-keyword-comment",
        SQLI,
        ERROR,
        2,
        "SQL keyword followed by a comment used as whitespace: select/**/, or/**/",
        r"\b(select|union|from|where|and|or|insert|update|delete|drop|having)/\*",
    ),
    _rule(
        "sqli-statement-start",
        SQLI,
        WARNING,
        2,
        "a value that starts like an SQL statement",
        r"{B}\s*(select\s+[\w*@]|insert\s+into\s|delete\s+from\s|update\s+\w+\s+set\s|"
        r"drop\s+(table|database)\s|exec(ute)?\s+\w|declare\s+@)",
    ),
    _rule(
        "sqli-quote-keyword",
        SQLI,
        ERROR,
        2,
        "a quote followed directly by an SQL keyword or operator",
        r"['\"`]\s*(\)\s*)*(union|select|and|or|xor|order\s+by|group\s+by|having|limit|"
        r"procedure|into|from|where|;|\|\||&&)\b",
    ),
    # --- Cross-site scripting ------------------------------------------------------------
    _rule(
        "xss-libinjection",
        XSS,
        CRITICAL,
        1,
        "libinjection's HTML5 tokenizer finds script execution in the value",
    ),
    _rule(
        "xss-script-tag",
        XSS,
        CRITICAL,
        1,
        "<script> or </script> tag",
        r"<\s*/?\s*script\b|<\s*/\s*script\s*>",
    ),
    _rule(
        "xss-event-handler",
        XSS,
        CRITICAL,
        1,
        "HTML event handler attribute: onerror=, onload=, onmouseover=...",
        r"([\s\"'`/;<>(]|{B})on(" + _EVENTS + r")\s*=|<[a-z!][^>]*[\s\"'/]on[a-z]{3,40}\s*=",
    ),
    _rule(
        "xss-dangerous-tag",
        XSS,
        CRITICAL,
        1,
        "tags that run or load active content: iframe, object, embed, svg, math, base...",
        r"<\s*([a-z]{0,8}:)?(iframe|frame|frameset|object|embed|applet|svg|math|base|meta|link|"
        r"isindex|xss|vmlframe|import|xml|bgsound|layer|ilayer|plaintext|xmp|noscript|"
        r"template|portal|animate|set|handler|listener|event-source)\b",
    ),
    _rule(
        "xss-tag-with-source",
        XSS,
        CRITICAL,
        1,
        "an HTML tag whose src/href/action/data/formaction points to script",
        r"<\s*[a-z][a-z0-9:_-]*\b[^>]*\b(src|href|action|formaction|data|poster|"
        r"background|dynsrc|lowsrc|xlink:href|srcdoc|code|codebase)\s*=\s*['\"`]?\s*"
        r"(javascript|vbscript|livescript|mocha|data\s*:\s*text/html|data\s*:[^,]*;base64)",
    ),
    _rule(
        "xss-javascript-uri",
        XSS,
        CRITICAL,
        1,
        "a javascript:/vbscript: URI with code after it",
        r"\b(javascript|vbscript|livescript|mocha)\s*:([^\s\x00]*[(`=]|\s*[a-z_$.\[\]'\"]+\s*[(`=])|"
        r"{B}\s*(javascript|vbscript):[a-z_$/\\]",
    ),
    _rule(
        "xss-js-sink",
        XSS,
        CRITICAL,
        1,
        "JavaScript sinks and globals used by XSS payloads",
        r"\bdocument\s*\.\s*(cookie|domain|write|writeln|location|body\s*\.\s*innerhtml)\b|"
        r"\bwindow\s*\.\s*(location|open|name)\b|\.innerhtml\s*=|\.outerhtml\s*=|"
        r"\bstring\s*\.\s*fromcharcode\s*\(|\bfromcharcode\s*\(|\btop\s*\[\s*['\"`]|"
        r"\b(self|top|parent|window|this|frames|globalthis)\s*\[\s*['\"`][a-z$_\\]+['\"`]\s*(\+|\])|"
        r"\bconstructor\s*\.\s*constructor\s*\(|\bset(timeout|interval)\s*\(\s*['\"`]|"
        r"\bimportscripts\s*\(|\blocation\s*\.\s*(href|hash|search)\b|\bnew\s+function\s*\(|"
        r"\bdocument\s*\)?\s*\[\s*['\"`](cookie|domain|write|location)|"
        r"\bdocument\s*\.\s*(queryselector(all)?|getelementsby[a-z]+|getelementbyid|createelement|"
        r"body\s*\.\s*appendchild|documentelement|forms|images|scripts)\b",
    ),
    _rule(
        "xss-alert-call",
        XSS,
        CRITICAL,
        1,
        "the classic probes: alert(1), prompt`1`, (confirm)(1), alert.call(...)",
        r"\b(alert|prompt|confirm|print)\s*(\(\s*[\w'\"`./\[\]-]*\s*\)|`[^`]*`)|"
        r"\(\s*(alert|prompt|confirm)\s*\)\s*[(`]|\b(alert|prompt|confirm|eval)\s*\.\s*"
        r"(call|apply|bind)\s*\(|\[\s*['\"`](alert|prompt|confirm|eval)['\"`]\s*\]",
    ),
    _rule(
        "xss-eval-family",
        XSS,
        CRITICAL,
        1,
        "eval() and friends with string arguments",
        r"\b(eval|execscript|settimeout|setinterval|function)\s*\(\s*(['\"`]|atob\s*\(|"
        r"unescape\s*\(|decodeuri|string\.|location|name\b|document)",
    ),
    _rule(
        "xss-spread-script-scheme",
        XSS,
        CRITICAL,
        1,
        "a script URI scheme spelled with whitespace or control characters inside: "
        "ja&Tab;vascript:, v&NewLine;bscript:",
        _spread("javascript") + "|" + _spread("vbscript") + "|"
        r"\burl\s*\(\s*['\"]?\s*(javascript|vbscript)\b",
    ),
    _rule(
        "xss-alternative-angle-brackets",
        XSS,
        CRITICAL,
        1,
        "tags written with UTF-7 (+ADw-) or 8-bit characters that 7-bit filters read as "
        "angle brackets (\u00bc script \u00be)",
        r"\+adw-\s*/?\s*(script|img|svg|iframe|body|a\b|object|embed|style)|"
        r"(\xc2\xbc|\xbc)\s*/?\s*(script|img|svg|iframe|body|object)",
    ),
    _rule(
        "xss-js-obfuscation",
        XSS,
        CRITICAL,
        1,
        "JavaScript written to avoid letters or parentheses: JSFuck (![]+[]), tagged "
        "templates [].map.call`...`, Reflect.x.call``",
        r"\(\s*!\s*\[\s*\]\s*\+\s*\[\s*\]\s*\)|\[\s*\+\s*!\s*\+\s*\[\s*\]\s*\]|"
        r"\+\s*!!\s*\[\s*\]|\.\s*(call|apply|bind)\s*`|\breflect\s*\.\s*[a-z]+\s*\.\s*call\b",
    ),
    _rule(
        "xss-html-injection",
        XSS,
        ERROR,
        2,
        "an HTML tag with attributes in a value",
        r"<\s*(img|image|a|body|div|input|form|button|video|audio|source|details|select|"
        r"textarea|marquee|table|td|style|span|p|h1|b|i|x|html|head|title|keygen|"
        r"picture|track|dialog|menu|object)\b[^>]*(\s|/)[a-z-]+\s*=",
    ),
    _rule(
        "xss-style-expression",
        XSS,
        CRITICAL,
        1,
        "CSS that runs script: expression(), -moz-binding, behavior:, @import javascript",
        r"\bexpression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url|"
        r"@import\s*['\"]?\s*(javascript|http)|<\s*style\b[^>]*>[^<]*@import",
    ),
    _rule(
        "xss-html-tag",
        XSS,
        ERROR,
        2,
        "an HTML element in a value",
        r"<\s*/?\s*(html|body|head|h[1-6]|div|span|p|b|i|u|a|img|table|tr|td|ul|li|form|"
        r"input|button|textarea|select|option|label|br|hr|center|font|marquee|blink)\s*/?>",
    ),
    _rule(
        "xss-js-encoding-helpers",
        XSS,
        WARNING,
        2,
        "atob()/btoa()/setInterval() calls",
        r"\b(atob|btoa|settimeout|setinterval)\s*\(",
    ),
    _rule(
        "xss-closing-breakout",
        XSS,
        ERROR,
        2,
        "breaking out of an attribute or tag: \"> or '> followed by a tag",
        r"['\"`]\s*/?>\s*<\s*[a-z!/]|['\"`]\s*/?>\s*{E}|-->\s*<\s*[a-z]",
    ),
    # --- Command injection -----------------------------------------------------------------
    _rule(
        "cmdi-chained-command",
        CMDI,
        CRITICAL,
        1,
        "a shell separator followed by a command and an argument: ; cat /etc/passwd, | id",
        r"(;|\||&|\$\(|\n|\r|\|\||&&|\$\{IFS\}|\$IFS)\s*(\{\s*)?"
        r"(/(usr/)?(s?bin|local/bin)/)?(" + _SHELL_COMMANDS + r")(\.exe)?" + _SHELL_ARGUMENT,
    ),
    _rule(
        "cmdi-chained-word-command",
        CMDI,
        CRITICAL,
        1,
        "a separator, then a command that is also a word, with an option or absolute path: "
        "; find /etc -name, | sort -r, && type %SYSTEMROOT%",
        r"(;|\||&&|\$\(|`|\n)\s*(" + _WORD_COMMANDS + r")\s+"
        r"(-{1,2}[a-z]|/([a-z]|\s|{E})|~/|%[a-z_]+%)",
    ),
    _rule(
        "cmdi-shell-dash-c",
        CMDI,
        CRITICAL,
        1,
        "a shell started with a command string: sh -c, bash -c, cmd /c",
        r"\b(ba|da|k|z|c|tc|a)?sh\s+-[a-z]*c\s|\bcmd(\.exe)?\s+/[ck]\b|\b(ba|da|k|z|a)?sh\s*,\s*-c\s*,",
    ),
    _rule(
        "cmdi-recon-command-alone",
        CMDI,
        CRITICAL,
        1,
        "a value that is only a reconnaissance command: whoami, ifconfig, uname -a, ls -la /",
        r"{B}\s*['\"`]?\s*(whoami|ifconfig|ipconfig|systeminfo|sysinfo|netstat\s+-[a-z]+|"
        r"uname\s+-[a-z]+|ls\s+-[a-z]+(\s+[/~.][^\s\x00]*)?|id\s*;|net\s+(user|localgroup)|"
        r"cat\s+/[a-z][^\s\x00]*|(wget|curl)\s+(-[a-z]+\s+)*(https?|ftp)://[^\s\x00]+|"
        r"type\s+(%[a-z_]+%|[a-z]:)[^\x00]*|ping\s+-[nc]\s+\d+[^\x00]*|net\s+(view|share|use|session)|"
        r"dir\s+[a-z]:\\[^\x00]*|(nohup|strace|ltrace|nice|timeout|time)\s+(who|whoami|id|ifconfig|"
        r"uname|sh|bash|nc|ncat|netcat)\b[^\x00]*)\s*['\"`]?\s*{E}|"
        r"{B}\s*(whoami|ifconfig|ipconfig|systeminfo|uname)\s*[;|&]|"
        r"{B}\s*cd\s+[/~.][^\s\x00]*\s*(;|&&|\|)|\bfind\s+[^\x00]{0,256}\s-exec(dir)?\s|"
        r"\b(invoke-expression|invoke-webrequest|invoke-restmethod|start-process|downloadstring|"
        r"downloadfile)\b|\bnew-object\s+(system\.)?net\.webclient\b|\biex\s*\(|"
        r"\bnetsh\s+(firewall|advfirewall|interface|wlan|winhttp)\s+(set|add|show|delete|reset)\b|"
        r"\breg(\.exe)?\s+(add|delete|query|save|export)\s+['\"]?hk(lm|cu|cr|u|cc|ey_)",
    ),
    _rule(
        "cmdi-glob-path",
        CMDI,
        CRITICAL,
        1,
        "shell globs standing in for a system path: /???/??t, /e[t]c/pa?swd",
        r"/[a-z?*]*(\[[a-z?*!^-]{1,6}\]|\?)[a-z?*\[\]]*/[a-z?*\[\]]*(\[[a-z?*!^/-]{1,6}\]|\?)|"
        r"/\?\?\?/|/\*/[a-z?*]*\?",
    ),
    _rule(
        "cmdi-command-substitution",
        CMDI,
        CRITICAL,
        1,
        "command substitution: $(cmd), `cmd`",
        # A bare `id` or `ls` is Markdown in API descriptions; in an injection the
        # backticks follow a separator or start the value, or the command has arguments.
        r"\$\(\s*[a-z/.][^)]*\)|({B}|[;|&=(<>'\"$])\s*`\s*(/[a-z/]*)?("
        + _STRONG_COMMANDS
        + r")(\s+[^`]*|<[^`]*)?`|`\s*(/[a-z/]*)?("
        + _STRONG_COMMANDS
        + r")(\s+[^`\x00]*[/|;&$<>-][^`\x00]*|<[^`\x00]*)`|"
        r"{B}\s*['\"]\s*(" + _STRONG_COMMANDS + r")\s*({E}|[;|&])|"
        r"[<>]\(\s*(/[a-z/]*)?(" + _STRONG_COMMANDS + r")\b|"
        r"{B}\s*(net\s+(user|localgroup)\s|(" + _STRONG_COMMANDS + r")\s*[;|&]+\s*{E})",
    ),
    _rule(
        "cmdi-parameter-substring",
        CMDI,
        CRITICAL,
        1,
        "bash substring expansion standing in for characters a filter looks for: "
        "${PATH:0:1} is '/', ${HOME:0:1}etc",
        r"\$\{[a-z_][a-z0-9_]*:\s*-?\d+\s*:\s*-?\d+\s*\}",
    ),
    _rule(
        "cmdi-ifs-evasion",
        CMDI,
        CRITICAL,
        1,
        "shell evasion: $IFS, ${IFS}, brace expansion {cat,/etc/passwd}, $@ inside words",
        r"\$\{?ifs\b|\{\s*,?\s*(" + _SHELL_COMMANDS + r")\s*,\s*[^}\s]*\}|"
        r"\b[a-z]+(\$[@!$*#?0-9-]|\$\{[a-z0-9_]*\}|''|\"\")[a-z]+\b[^\x00]*(/|\s-)|"
        r"(\"\"[a-z]){3,}|(''[a-z]){3,}",
    ),
    _rule(
        "cmdi-shellshock",
        CMDI,
        CRITICAL,
        1,
        "Shellshock function definition: () { :; };",
        r"\(\s*\)\s*\{\s*[^}]*;\s*\}\s*;|\(\s*\)\s*\{[^}\x00]{0,32}\|[^}\x00]{0,32}&\s*\}|"
        r"({B}|;|&&|\|)\s*alias\s+(-p\s+)?['\"]?[\w.-]+['\"]?=|{B}\s*\(\s*\)\s*\{",
    ),
    _rule(
        "cmdi-shell-path",
        CMDI,
        CRITICAL,
        1,
        "absolute path of a shell or interpreter: /bin/sh, /usr/bin/python, cmd.exe /c",
        r"/(usr/)?(local/)?s?bin/(ba|z|k|c|da|tc)?sh\b|/(usr/)?(local/)?bin/(python[23]?|"
        r"perl|ruby|php|nc|ncat|netcat|wget|curl|busybox|socat|telnet|id|cat|ls|whoami|"
        r"uname|env|echo)\b|\bcmd(\.exe)?\s+/[ck]\s|\bpowershell(\.exe)?\s+-|"
        r"\bcmd\.exe\b|\bsystem32\\",
    ),
    _rule(
        "cmdi-reverse-shell",
        CMDI,
        CRITICAL,
        1,
        "reverse-shell and download-and-run idioms",
        r"/dev/(tcp|udp)/|\bnc(at)?\s+(-[a-z]*e|[^\x00]*\s-e\s)|\bbash\s+-i\b|"
        r"\b(wget|curl)\s+[^\x00]*\|\s*(ba)?sh\b|\bmkfifo\s|\bsocat\s+[a-z-]+:|"
        r"\b(python[23]?|perl|ruby|php)\s+-[a-z]*[cer]\s+['\"]|\bchmod\s+[+0-7]*x?\s+[^\x00]*&&|"
        r"\b(wget|curl)\s+(-[a-z]+\s+)*(https?|ftp)://[^\x00]*(-o|>|;|&&)",
    ),
    _rule(
        "cmdi-windows",
        CMDI,
        CRITICAL,
        1,
        "Windows command probes: & dir, | type C:\\, net user, set /a",
        r"(&|\||;)\s*(dir(\s+/|\s*{E})|type\s+([a-z]:|%[a-z_]+%|\\\\)|net\s+(user|localgroup|view|share)\b|"
        r"ipconfig\b|systeminfo\b|whoami\b|tasklist\b|set\s+/a\b|certutil\b|bitsadmin\b|"
        r"wmic\b|reg\s+(query|add|delete)\b|netsh\s)|"
        r"{B}\s*(if\s+(/i\s|not\s|exist\s|errorlevel\s|%)|for\s+(/[fdlr]\s|%%?[a-z~]))|"
        r"\bfor\s+(/[a-z]\s+[^\x00]{0,64})?%%?[^\s\x00]{1,3}\s+in\s*\([^)\x00]*\)\s*do\b|"
        r"\bif\s+[^\x00]{0,64}\s(equ|neq|lss|leq|gtr|geq)\s+[^\x00]{0,64}\s(@?echo|goto|set|call|exit)\b|"
        r"\bif\s+[^\x00]{0,64}==[^\x00]{0,64}\s(\(|@?echo\b|goto\b|set\b|call\b)|"
        # System files, not any path: C:\\Users\\anne\\report.docx is a document.
        r"\b[a-z]:\\(windows\\(win\.ini|system\.ini|system32|repair)\b|winnt\b|boot\.ini\b|"
        r"inetpub\b)",
    ),
    _rule(
        "cmdi-argument-injection",
        CMDI,
        CRITICAL,
        1,
        "an option that makes a tool run a command or write a file, where a value was "
        "expected: --upload-pack=, -c core.sshCommand=, --checkpoint-action=exec, "
        "-oProxyCommand=, --use-compress-program=",
        r"({B}|\s)(--(upload-pack|receive-pack|exec|config-env|template|output-document|"
        r"post-file|to-command|use-compress-program|rsh|rsync-path|unzip-command|"
        r"use-askpass|help-command|info-script|new-volume-script|index-filter|tree-filter|"
        r"msg-filter)\s*=|--checkpoint-action\s*=\s*exec|"
        r"-o\s*(proxycommand|localcommand|permitlocalcommand)\s*=|"
        r"-c\s*(core\.(sshcommand|pager|editor|fsmonitor|hookspath|gitproxy)|"
        r"protocol\.[a-z]+\.allow|credential\.helper|uploadpack\.packobjectshook)\s*=)",
    ),
    _rule(
        "cmdi-ssi",
        CMDI,
        CRITICAL,
        1,
        "server-side include directive: <!--#exec cmd=",
        r"<!--\s*#\s*(exec|include|echo|config|fsize|flastmod|printenv|set|if)\b",
    ),
    _rule(
        "cmdi-unix-command-alone",
        CMDI,
        WARNING,
        2,
        "a value that is a bare command with options or paths",
        r"{B}\s*(" + _SHELL_COMMANDS + r")\s+(-[a-z]|/[a-z]|[^\s\x00]*/[^\s\x00]*\s*{E})",
    ),
    # --- Path traversal / local file inclusion -----------------------------------------
    _rule(
        "path-traversal-dotdot",
        PATH_TRAVERSAL,
        CRITICAL,
        1,
        "../ or ..\\ used to leave a directory",
        r"({B}|[/\\=:;,'\"]|\.\.)\s*\.\.+\s*[/\\]|[/\\]\.\.+\s*({E}|[/\\;?#])|"
        r"\.\.[/\\]+\.\.|\.\.;[/\\]|\.{3,}[/\\]|[/\\]\.{3,}[/\\]|"
        r"\.\.([^a-z0-9.\x00]{1,8}|0x[25][cf]|%[0-9a-z]{2,5})+\.\.([^a-z0-9.\x00]{1,8}|0x[25][cf])",
    ),
    _rule(
        "path-traversal-sensitive-file",
        PATH_TRAVERSAL,
        CRITICAL,
        1,
        "well-known sensitive files: /etc/passwd, win.ini, /proc/self/environ, .htaccess, "
        "/run/secrets/, /etc/ssl/private/",
        r"\b(etc|private/etc)[/\\]+(passwd|shadow|group|hosts|issue|motd|"
        r"master\.passwd|sudoers|crontab|fstab|mysql|httpd|apache2|nginx|ssh|security)\b|"
        r"\betc([^a-z0-9\x00]{1,12}|0x[25][cf])+(passwd|shadow|issue|hosts|group|sudoers|motd)\b|"
        r"\bwindows([^a-z0-9\x00]{1,12}|0x[25][cf])+(system32|win\.ini|system\.ini)\b|"
        r"[/\\]proc[/\\]+(self|\d+)[/\\]|\bwin\.ini\b|\bboot\.ini\b|\bsystem\.ini\b|"
        r"\bwindows[/\\]+(system32|win\.ini|repair)\b|\bwinnt[/\\]|"
        r"({B}|[/\\])\.(htaccess|htpasswd|git[/\\]|svn[/\\]|env\b|ssh[/\\]|aws[/\\])|"
        r"\bweb-inf[/\\]|\bid_(rsa|dsa|ecdsa|ed25519)\b|[/\\]var[/\\]+log[/\\]|"
        r"\bvar[/\\]+(run|lib)[/\\]+(secrets|docker)|[/\\]root[/\\]+\.|"
        # Container and TLS secrets: /run/secrets/db_password, /etc/ssl/private/server.key
        r"({B}|[/\\])run[/\\]+secrets[/\\]|\betc[/\\]+(ssl|pki)[/\\]+private\b|"
        r"\bssh_host_[a-z0-9]+_key\b|"
        r"\bboot\.ini\b|\binetpub[/\\]|\bphp\.ini\b|\bwp-config\.php\b|\bweb\.config\b|"
        r"\bntuser\.dat\b|\brepair[/\\]+(sam|system|security|software)\b|"
        r"%(systemroot|windir|systemdrive)%[/\\]|\\\\[a-z0-9._:-]+\\(admin|ipc|[a-z])\$",
    ),
    _rule(
        "path-traversal-invalid-utf8",
        PATH_TRAVERSAL,
        CRITICAL,
        1,
        "percent-encoded bytes that are never valid UTF-8 (overlong %c0%ae, %e0%80%ae, "
        "IIS %c1%pc), twice: only decoders that misread them see the '../' they hide",
        r"(%c[01]%[0-9a-z]{2}|%e0%[89][0-9a-f]%|%f0%8[0-9a-f]%|%f[89a-f]%[0-9a-f]{2}%)"
        r"[^\x00]{0,64}(%c[01]%[0-9a-z]{2}|%e0%[89][0-9a-f]%|%f0%8[0-9a-f]%|%f[89a-f]%[0-9a-f]{2}%)",
    ),
    _rule(
        "path-traversal-double-percent",
        PATH_TRAVERSAL,
        CRITICAL,
        1,
        "malformed double-percent escapes (%%2f, %%35%%63) used to slip a separator past "
        "one decoder, twice in a value",
        r"%%[0-9a-f]{2}[^\x00]{0,64}%%[0-9a-f]{2}",
    ),
    _rule(
        "path-traversal-absolute",
        PATH_TRAVERSAL,
        WARNING,
        2,
        "a value that is an absolute file path or a Windows drive path",
        r"{B}\s*(/(etc|proc|var|usr|bin|sbin|root|home|tmp|dev|sys|boot|opt)/|"
        r"[a-z]:[/\\]|\\\\[a-z0-9._-]+\\)",
    ),
    _rule(
        "path-traversal-wrapper",
        PATH_TRAVERSAL,
        CRITICAL,
        1,
        "PHP/Java stream wrappers that read files: php://filter, zip://, phar://, jar:file:",
        r"\b(php|zip|phar|compress\.zlib|compress\.bzip2|glob|data|expect|input|ogg|"
        r"rar|ssh2\.[a-z]+)://|\bjar:(file|http)|\bphp://(filter|input|stdin|memory|fd)",
    ),
    _rule(
        "path-traversal-unc",
        PATH_TRAVERSAL,
        ERROR,
        2,
        "a UNC path \\\\host\\share",
        r"{B}\s*\\\\[a-z0-9._:-]+\\[a-z0-9$._-]+",
    ),
    # --- SSRF -----------------------------------------------------------------------------
    _rule(
        "ssrf-dangerous-scheme",
        SSRF,
        CRITICAL,
        1,
        "gopher:, dict:, file:, ldap:, tftp:, jar:, netdoc: and expect: URLs reach "
        "internal services or files",
    ),
    _rule(
        "ssrf-internal-host",
        SSRF,
        CRITICAL,
        1,
        "a URL whose host is loopback, link-local or a cloud metadata endpoint",
    ),
    _rule(
        "ssrf-private-host",
        SSRF,
        CRITICAL,
        1,
        "a URL whose host is in a private (RFC 1918/4193) or reserved range",
    ),
    _rule(
        "ssrf-obfuscated-ip",
        SSRF,
        CRITICAL,
        1,
        "a URL host written as a decimal, octal, hex or shortened IPv4 address",
    ),
    _rule(
        "ssrf-remote-file-inclusion",
        SSRF,
        CRITICAL,
        1,
        "remote file inclusion: a URL to a script on a bare IP address, or a URL ended with "
        "'?' so that the suffix the application appends becomes a query string",
        r"{B}\s*(https?|ftps?)://\d{1,3}(\.\d{1,3}){3}(:\d+)?/[^\s\x00]*\.(php\d?|phtml|pl|cgi|"
        r"asp|aspx|jsp|txt|sh|py|inc)\b|{B}\s*(https?|ftps?|file)://[^\s\x00]+\?+\s*{E}",
    ),
    _rule(
        "ssrf-remote-script-url",
        SSRF,
        CRITICAL,
        2,
        "a value that is a URL of a server-side script or text file on another host "
        "(remote file inclusion): https://host/x.php, ftp://host/shell.txt",
        r"{B}\s*(https?|ftps?)://[^\s\x00/]+/[^\s\x00?#]*\.(php\d?|phtml|pl|cgi|asp|aspx|jsp|"
        r"txt|sh|py|inc)([?#][^\x00]*)?\s*{E}",
    ),
    _rule(
        "ssrf-url-in-value",
        SSRF,
        NOTICE,
        3,
        "a value that holds an absolute URL",
        r"{B}\s*(https?|ftp)://",
    ),
    # --- NoSQL injection ------------------------------------------------------------------
    _rule(
        "nosql-operator-key",
        NOSQL,
        CRITICAL,
        1,
        'a MongoDB query operator as an object key: {"$ne": ...}, {"$where": ...}',
    ),
    _rule(
        "nosql-operator-in-name",
        NOSQL,
        CRITICAL,
        1,
        "a query operator in a parameter name: user[$ne]=, password[$regex]=",
        r"\[\s*\$(ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|nor|not|expr|"
        r"elemmatch|all|size|type|mod|text|function|accumulator)\s*\]",
    ),
    _rule(
        "nosql-operator-in-value",
        NOSQL,
        CRITICAL,
        1,
        'a query operator in text that will be parsed as JSON: {"$gt": ""}, $where:',
        r"([{,'\"]|{B})\s*['\"]?\$(ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|"
        r"nor|not|expr|elemmatch|function|accumulator|lookup|merge|out|comment|text|"
        r"options|size|all|mod|type|jsonschema|search|slice)['\"]?\s*:",
    ),
    _rule(
        "nosql-javascript",
        NOSQL,
        CRITICAL,
        1,
        "server-side JavaScript in a query: db.x.find(, this.password ==, return true",
        r"\bdb\s*\.\s*[a-z_]+\s*\.\s*(find|insert|update|remove|drop|delete|aggregate|"
        r"count|save)[a-z]*\s*\(|\bdb\s*\.\s*(getcollection|dropdatabase|eval|runcommand)\s*\(|"
        r"\bthis\s*\.\s*[a-z_]+\s*(==|!=|\.match\s*\()|;\s*return\s+(true|1|this)\b|"
        r"\|\|\s*['\"]?1['\"]?\s*==\s*['\"]?1|\bwhile\s*\(\s*(true|1)\s*\)|"
        r"\bdo\s*\{[^}]*\}\s*while\s*\(|\b(var|let|const)\s+[a-z_$][\w$]*\s*=\s*new\s+date\b|"
        r"\bsleep\s*\(\s*\d+\s*\)\s*;?\s*(\}|return|var)|\bmapreduce\b|\$where\b",
    ),
    # --- LDAP injection -------------------------------------------------------------------
    _rule(
        "ldap-filter-injection",
        LDAP,
        CRITICAL,
        1,
        "LDAP filter syntax that closes and opens filters: *)(uid=*), (|(objectclass=*))",
        r"\)\s*\(\s*[|&!]|\(\s*[|&!]\s*\(\s*[a-z][\w.-]*\s*[~<>]?=|"
        r"\*\s*\)\s*\(\s*[a-z][\w.-]*\s*[~<>]?=|\(\s*[a-z][\w.-]*\s*=\s*\*\s*\)|"
        r"\)\s*\(\s*[a-z][\w.-]*\s*[~<>]?=[^)]*\)\s*(\(|{E})|\(\s*\(\s*[|&!]|"
        r"\*\s*\)\s*\(|\*\s*\)\s*\)\s*(%00|{E})|\)\s*\(\s*[a-z]+\s*=\s*\)\s*\)",
    ),
    _rule(
        "ldap-extensible-match",
        LDAP,
        CRITICAL,
        1,
        "LDAP extensible match with a matching-rule OID: cn:2.5.13.2:=",
        r"\b[a-z][\w-]*(:dn)?:\d+(\.\d+)+:=|\b(objectclass|objectcategory)\s*=\s*\*",
    ),
    _rule(
        "ldap-wildcard-close",
        LDAP,
        ERROR,
        2,
        "a wildcard followed by a closing parenthesis",
        r"\*\s*\)\s*(\(|\)|%00|{E})",
    ),
    # --- Server-side template injection -------------------------------------------------
    _rule(
        "ssti-arithmetic-probe",
        SSTI,
        CRITICAL,
        1,
        "template arithmetic probes: {{7*7}}, ${7*7}, #{7*7}, <%= 7*7 %>, *{7*7}, @(7*7)",
        r"(\{\{|\$\{\{?|#\{|\*\{|@\(|<%=?|\{%|\$\{\s*\{|\{#|\[\[|\{\s*\{)\s*['\"]?\s*-?\d+"
        r"\s*['\"]?\s*[*+/%-]\s*['\"]?\s*-?\d+\s*['\"]?\s*(\}|%>|\)|\]\]|%\})",
    ),
    _rule(
        "ssti-object-traversal",
        SSTI,
        CRITICAL,
        1,
        "template expressions reaching Python/Java/JS internals",
        # Bounded: with an unbounded [^\x00]* the bundled Hyperscan (vectorscan 5.4.12)
        # missed "{{config.items()}}" after some earlier values in the same buffer.
        r"(\{\{|\{%|\$\{|#\{|\*\{|<%)[^\x00]{0,512}(__class__|__mro__|__subclasses__|"
        r"\bsubclasses\s*\(|\bmro\s*\(|\.\s*class\s*\.\s*[a-z]|"
        r"__globals__|__builtins__|__init__|__import__|__base__|__dict__|\bconfig\b|"
        r"\brequest\s*\.\s*application|\blipsum\b|\bcycler\b|\bjoiner\b|\bnamespace\b|"
        r"\bself\s*\.\s*_|getclass\s*\(|\bconstructor\s*\.\s*constructor|"
        r"\bjava\s*\.\s*lang|\bruntime\b|\bprocessbuilder\b|\bos\s*\.\s*(popen|system)|"
        r"\bsubprocess\b|\bexec\s*\(|\beval\s*\(|\bsystem\s*\(|\bpopen\s*\(|\bimport\b|"
        r"\battr\s*\(|\|\s*attr\b|\bfreemarker\b|\bbean|\bt\s*\(\s*java|\bapplication\b)",
    ),
    _rule(
        "ssti-engine-directive",
        SSTI,
        CRITICAL,
        1,
        "template-engine directives that execute: <#assign, freemarker Execute, {php}, #set(",
        r"<#\s*(assign|import|include|list|if)\b|freemarker\s*\.\s*template\s*\.\s*utility|"
        r"\?\s*new\s*\(\s*\)|\{\s*php\s*\}|\{\s*/?\s*(system|literal)\b|#set\s*\(\s*\$|"
        r"\$\{\s*t\s*\(|\{\{\s*(request|_self|dump\s*\(|app\s*\.\s*request|settings\s*\.)|"
        r"\{\$smarty\.|\|\s*(filter|map|reduce|sort)\s*\(\s*['\"](system|exec|passthru|shell_exec|popen)|"
        r"\{\{[^}]{0,64}\.\s*(touppercase|tolowercase|getclass|concat)\s*\(|\{\{\s*[^}]*\|\s*(safe|e|escape)\s*\}\}[^\x00]{0,10}\{\{|"
        r"\{%\s*(import|include|extends|set|for|if|macro|call|raw|debug)\b|"
        r"\$\{\s*(class|product|object|request|session|application|param|header|cookie|"
        r"pagecontext|facescontext|initparam)\b",
    ),
    _rule(
        "ssti-expression",
        SSTI,
        WARNING,
        2,
        "template expression delimiters with an operator or a call inside",
        r"(\{\{|\$\{|#\{|\*\{)[^}\x00]*([*+/%(]|\.\s*[a-z_]+\s*\()[^}\x00]*\}",
    ),
    # --- Log4Shell / JNDI -------------------------------------------------------------------
    _rule(
        "log4shell-jndi",
        LOG4SHELL,
        CRITICAL,
        1,
        "a Log4j JNDI lookup: ${jndi:ldap://...}",
        r"\$\{\s*jndi\s*:|\$\{\s*j\s*n\s*d\s*i\s*:|jndi\s*:\s*(ldaps?|rmi|dns|iiop|corba|nds|nis|http)s?\s*:",
    ),
    _rule(
        "log4shell-nested-lookup",
        LOG4SHELL,
        CRITICAL,
        1,
        "nested Log4j lookups used to spell a lookup: ${${lower:j}ndi:, ${${::-j}",
        r"\$\{[^}]*\$\{|\$\{\s*(lower|upper|::-|env|sys|java|base64|date|main|bundle|"
        r"ctx|docker|k8s|spring|log4j|marker|map|sd|web|jvmrunargs|event|jndi)\s*:[^}]*\}",
    ),
    # --- Prototype pollution -------------------------------------------------------------
    _rule(
        "prototype-pollution-key",
        PROTOTYPE_POLLUTION,
        CRITICAL,
        1,
        "an object key __proto__ or constructor.prototype",
    ),
    _rule(
        "prototype-pollution-text",
        PROTOTYPE_POLLUTION,
        CRITICAL,
        1,
        "__proto__ or constructor[prototype] in a parameter name or value, also as a JSON "
        "Pointer path (a JSON Patch op on /__proto__/admin)",
        r"__proto__\s*(\[|\.|['\"]?\s*[\]:=])|\[\s*['\"]?__proto__|"
        r"\bconstructor\s*(\[\s*['\"]?|\.\s*)prototype\b|\bobject\s*\.\s*prototype\b|"
        # JSON Patch / JSON Pointer paths: /__proto__/admin, /constructor/prototype/x
        r"({B}|/)\s*__proto__\s*({E}|/)|\bconstructor\s*/\s*prototype\b",
    ),
    # --- XXE ------------------------------------------------------------------------------
    _rule(
        "xxe-doctype",
        XXE,
        CRITICAL,
        1,
        "an XML document type declaration (DOCTYPE): APIs have no use for one, XXE needs one",
    ),
    _rule(
        "xxe-entity",
        XXE,
        CRITICAL,
        1,
        "an XML entity declaration, external or parameter",
        r"<!entity\s+(%\s*)?[\w.:-]+\s+(system|public)\b|<!entity\s+%|<!doctype\s+[\w:.-]+\s*(\[|system\b|public\b)",
    ),
    _rule(
        "xxe-xinclude",
        XXE,
        CRITICAL,
        1,
        "XInclude or external schema inclusion",
        r"<[\w]*:?include\b[^>]*\b(href|namespace)\s*=|xmlns:xi\s*=\s*['\"]http://www\.w3\.org/2001/xinclude|"
        r"<xs:(include|import|redefine)\b",
    ),
    _rule("xxe-malformed", XXE, WARNING, 2, "an XML body that does not parse"),
    _rule(
        "xxe-unusual-encoding",
        XXE,
        CRITICAL,
        1,
        "an XML body declaring UTF-7 or another encoding used to hide markup from filters",
    ),
    _rule(
        "xxe-schema-location",
        XXE,
        WARNING,
        2,
        "xsi:schemaLocation pointing to a remote schema",
        r"\bschemalocation\s*=\s*['\"][^'\"]*(https?|ftp|file)://",
    ),
    # --- Code injection (PHP, Java, JavaScript, expression languages) ----------------------
    _rule(
        "code-php",
        CODE_INJECTION,
        CRITICAL,
        1,
        "PHP code: <?php, system(), passthru(), base64_decode(, $_GET[",
        r"<\?(php|=)|\b(passthru|shell_exec|proc_open|pcntl_exec|"
        r"create_function|call_user_func(_array)?|file_put_contents|"
        r"file_get_contents|include_once|require_once|"
        r"highlight_file|show_source|phpinfo|base64_decode|gzinflate|str_rot13|"
        r"move_uploaded_file|unserialize)\s*\(\s*[$'\"a-z_]|"
        r"\b(system|exec|popen|assert|include|require|fopen|readfile|preg_replace|eval)\s*\(\s*['\"$`]|\$_(get|post|request|cookie|server|"
        r"files|env)\s*\[|\bphpinfo\s*\(\s*\)",
    ),
    _rule(
        "code-java",
        CODE_INJECTION,
        CRITICAL,
        1,
        "Java runtime and reflection: Runtime.getRuntime(), ProcessBuilder, deserialisation",
        r"\bjava\s*\.\s*lang\s*\.\s*(runtime|processbuilder|system|reflect|class)\b|"
        r"\bruntime\s*\.\s*getruntime\s*\(|\bnew\s+processbuilder\b|\bgetruntime\s*\(\s*\)\s*\.\s*exec|"
        r"\bclass\s*\.\s*forname\s*\(|\bgetdeclaredmethod\s*\(|\.getmethod\s*\(|"
        r"\bjavax\s*\.\s*(script|naming)\b|\bjava\s*\.\s*(io|net|util)\s*\.\s*[a-z]+(stream|socket|"
        r"url|scanner|reader|writer)\b|\brO0AB|\baced0005\b|\bjava\s*\.\s*beans\s*\.\s*xmldecoder",
    ),
    _rule(
        "code-expression-language",
        CODE_INJECTION,
        CRITICAL,
        1,
        "OGNL/SpEL/EL expressions: %{#...}, ${#...}, T(java.lang...), #context",
        r"%\{\s*[#(@]|\$\{\s*#|\bt\s*\(\s*java\s*\.|#\s*(context|_memberaccess|request|"
        r"session|application|parameters|attr)\s*[\[.]|@java\.lang|\bognlcontext\b|"
        r"#\s*[a-z_]+\s*=\s*@",
    ),
    _rule(
        "code-node",
        CODE_INJECTION,
        CRITICAL,
        1,
        "Node.js: require('child_process'), process.mainModule, global.process",
        r"\brequire\s*\(\s*['\"`](child_process|fs|net|os|vm|http)['\"`]\s*\)|"
        r"\bprocess\s*\.\s*(mainmodule|binding|env|exit|kill)\b|\bchild_process\b|"
        r"\bglobal\s*\.\s*process\b|\b(execsync|spawnsync)\s*\(|\bwhile\s*\(\s*new\s+date\b",
    ),
    _rule(
        "code-python",
        CODE_INJECTION,
        CRITICAL,
        1,
        "Python: __import__('os'), os.system(, subprocess, pickle/yaml object tags",
        r"\b__import__\s*\(|\bos\s*\.\s*(system|popen|exec[lv]p?e?)\s*\(|\bsubprocess\s*\.\s*"
        r"(call|popen|run|check_output)\b|!!python/|\beval\s*\(\s*compile\s*\(|"
        r"\bimport\s+(os|subprocess|socket|pty)\b",
    ),
    _rule(
        "code-perl-ruby",
        CODE_INJECTION,
        CRITICAL,
        1,
        "Perl/Ruby interpolation and system calls: @{[system 'id']}, %x(...), Kernel.exec",
        r"@\{\s*\[\s*(system|exec|`)|%x\s*[({\[]|\bkernel\s*\.\s*(exec|system|spawn)\b|"
        r"\bio\s*\.\s*popen\b|\bopen\s*\(\s*['\"]\s*\|",
    ),
    _rule(
        "code-vbscript-asp",
        CODE_INJECTION,
        CRITICAL,
        1,
        'VBScript/ASP execution: Execute(, Eval(, CreateObject("WScript.Shell")',
        r"\b(createobject|server\.createobject)\s*\(\s*['\"](wscript|scripting|shell|adodb)|"
        r"\bwscript\s*\.\s*shell\b|\bresponse\s*\.\s*write\s*\(|\bex\"?\s*&\s*\"?e\"?\s*&\s*\"?cute",
    ),
    # --- CRLF / header injection ----------------------------------------------------------
    _rule(
        "crlf-header-injection",
        CRLF,
        CRITICAL,
        1,
        "CR/LF (or U+560A/U+560D, which some servers cut to CR/LF) followed by a header, "
        "cookie or mail/IMAP/SMTP command",
        r"([\r\n]|\xe5\x98[\x8a\x8d])\s*(set-cookie|location|content-type|content-length|refresh|"
        r"x-[a-z-]+|access-control-[a-z-]+|transfer-encoding|host)\s*:|"
        r"[\r\n]\s*(rcpt\s+to|mail\s+from|bcc|cc)\s*:|"
        r"[\r\n]\s*(quit|helo|ehlo|data|rset|noop|vrfy|expn)\s*({E}|[\r\n])|"
        r"[\r\n]\s*[a-z]\d{1,4}\s+(capability|fetch|login|select|examine|store|copy|logout)\b|"
        r"[\r\n]\s*(http/\d|get\s+/|post\s+/)",
    ),
    _rule(
        "crlf-in-request-line",
        CRLF,
        ERROR,
        1,
        "CR or LF inside the path, query or a header (as sent or percent-encoded; a "
        "backslash-r in C:\\reports is no CR)",
        r"[\r\n]",
        _REQUEST_LINE,
        frozenset({"escape"}),
    ),
    # --- Uploads --------------------------------------------------------------------------
    _rule(
        "upload-executable-extension",
        UPLOAD,
        CRITICAL,
        1,
        "an uploaded file name with a server-side executable extension: .php, .jsp, .aspx...",
    ),
    _rule(
        "upload-content-mismatch",
        UPLOAD,
        CRITICAL,
        1,
        "an upload whose content starts with script or executable code (<?php, MZ, #!, <%)",
    ),
    _rule(
        "upload-archive-bomb",
        UPLOAD,
        CRITICAL,
        1,
        "compressed content (zip, gzip, bzip2, xz, or a gzip/deflate request body) that "
        "expands more than 100-fold past 1 MiB, or a zip with overlapping entries",
    ),
    # --- GraphQL --------------------------------------------------------------------------
    _rule(
        "graphql-introspection",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "a GraphQL introspection query (__schema/__type)",
    ),
    _rule("graphql-depth", GRAPHQL_ABUSE, CRITICAL, 1, "a GraphQL selection nested too deeply"),
    _rule(
        "graphql-aliases",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "too many GraphQL aliases (one request doing the work of many)",
    ),
    _rule("graphql-batch", GRAPHQL_ABUSE, CRITICAL, 1, "too many GraphQL operations in one batch"),
    _rule("graphql-syntax", GRAPHQL_ABUSE, WARNING, 1, "a GraphQL document that does not parse"),
    _rule(
        "graphql-fragment-cycle",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "GraphQL fragments that spread each other in a cycle (invalid, and endless to expand)",
    ),
    _rule(
        "graphql-duplicate-fields",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "the same GraphQL field asked for many times in one selection set (field duplication)",
    ),
    _rule(
        "graphql-directives",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "too many directives on one GraphQL field or fragment (directive overloading)",
    ),
    _rule(
        "graphql-fragment-depth",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "a long chain of GraphQL fragments spreading fragments",
    ),
    _rule(
        "graphql-page-size",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "a GraphQL page-size argument (first, limit, pageSize...) above the allowed bound",
    ),
    _rule(
        "graphql-expansion",
        GRAPHQL_ABUSE,
        CRITICAL,
        1,
        "a GraphQL document whose fragments expand to more fields than allowed",
    ),
    # --- Scanners -------------------------------------------------------------------------
    _rule(
        "scanner-user-agent",
        SCANNER,
        CRITICAL,
        1,
        "a vulnerability scanner's User-Agent",
        r"\b(sqlmap|nikto|nuclei|openvas|acunetix|netsparker|w3af|wpscan|masscan|zgrab|"
        r"nessus|havij|appscan|arachni|commix|jaeles|xsstrike|dirbuster|gobuster|"
        r"fuzz\s+faster\s+u\s+fool|nmap\s+scripting\s+engine|burp\s*collaborator|"
        r"interact\.sh|oast\.(me|fun|pro|site|online|live))\b",
        frozenset({"header"}),
    ),
    # --- Limits of inspection -------------------------------------------------------------
    _rule(
        "limits-too-many-values",
        LIMITS,
        CRITICAL,
        1,
        "more values than the detector inspects; the rest could hide anything",
    ),
    _rule("limits-too-deep", LIMITS, CRITICAL, 1, "a body nested deeper than the detector follows"),
    _rule(
        "limits-inflated-too-large",
        LIMITS,
        CRITICAL,
        1,
        "a compressed request body that expands past what the detector inspects (8 MiB, or "
        "more than 1,000 gzip members)",
    ),
    _rule(
        "limits-graphql-too-large",
        LIMITS,
        CRITICAL,
        1,
        "a GraphQL document with more tokens or deeper nesting than the parser reads",
    ),
    _rule(
        "limits-unknown-encoding",
        LIMITS,
        WARNING,
        1,
        "a request body in a content coding the detector cannot decode (br, zstd...)",
    ),
)

RULES_BY_ID: dict[str, Rule] = {rule.rule_id: rule for rule in RULES}

# Weak libinjection fingerprints: they also come from prose with quoted words
# ('"LIKE" STAMP' -> sos) or numbers with units ('80% AND 20%' -> 1&1).
WEAK_SQLI_FINGERPRINTS = frozenset({"sos", "s&s", "1&1", "s&1", "1&s", "1c", "sc", "nc", "n&1"})
# A fingerprint is strong only with a token that breaks out of a value or chains
# statements: string, comment, ';', UNION, function, variable, T-SQL, operator, '(' or an
# unparseable token. Prose fingerprints ("Enknk" for "select x from y where") are not.
STRONG_SQLI_TOKENS = frozenset("sc;UfvTo(X")
