"""Groups (FEP-1b12 communities, Mobilizon-style membership): see the modules.

* `core`        create/edit groups, roles, who may do what, the group's audiences
* `documents`   the Group actor document and its collections
* `membership`  join/leave/approve/reject/vouch/trust in our groups, local and federated (Join, Leave, Follow)
* `remote`      our members joining and leaving groups on other servers
* `posting`     posts into a group and the group's Announces (both forms, protocol §5.11)
* `moderation`  remove, lock, pin, ban/unban, the moderation log, moderation activities
* `directory`   the directory and the Atom feed
"""
