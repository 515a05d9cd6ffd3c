from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Group",
            name="review_first_posts",
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
